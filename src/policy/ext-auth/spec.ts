/** `extAuth` (SecurityPolicy, Envoy Gateway's ExtAuth field names, HTTP service only) in the IR. */
export interface ExtAuthSpec {
  /** Snapshot pool of the authorization Service (also in PolicyIr.pools). */
  readonly pool: string
  /** Prepended to the request path in the check request (EG `http.path`). */
  readonly path: string
  /** Client request headers sent to the service besides Authorization (EG `headersToExtAuth`). */
  readonly headersToExtAuth: readonly string[]
  /** Headers of the service's 2xx answer copied onto the upstream request (EG `http.headersToBackend`). */
  readonly headersToBackend: readonly string[]
  /** The service unreachable, timing out or failing (5xx): let the request through. */
  readonly failOpen: boolean
  readonly timeoutMs: number
}

declare module '../kind.ts' {
  interface PolicySpecs {
    extAuth: ExtAuthSpec
  }
}
