/**
 * BackendTrafficPolicy `requestBuffer` (Envoy Gateway api/v1alpha1 RequestBuffer): the gateway
 * receives each request body whole before it connects upstream, so a slow client never holds a
 * backend connection; a body larger than `limit` is refused with 413 (Envoy Gateway's meaning).
 * Without the policy Portico still buffers small bodies (--request-buffer-size) and streams the
 * rest (src/dataplane/http/front/request-buffer.ts).
 */
export interface RequestBufferSpec {
  /** Largest body buffered, in bytes; larger → 413. */
  readonly limitBytes: number
}

declare module '../kind.ts' {
  interface PolicySpecs {
    requestBuffer: RequestBufferSpec
  }
}
