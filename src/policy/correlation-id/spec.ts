/** `correlationId`: a per-request id header going upstream (Kong's correlation-id plugin). */
export interface CorrelationIdSpec {
  /** Lower-case header name (Kong's default Kong-Request-ID). */
  readonly header: string
  /** uuid: a random UUID; uuid#counter: a per-process UUID and a counter; tracker: address, port, time and counter. */
  readonly generator: 'uuid' | 'uuid#counter' | 'tracker'
  /** Also send the id back to the client on the response. */
  readonly echoDownstream: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    correlationId: CorrelationIdSpec
  }
}
