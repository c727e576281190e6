/** `requestSizeLimit`: the largest request body accepted (Kong's request-size-limiting plugin). */
export interface RequestSizeLimitSpec {
  readonly maxBytes: number
  /** A request without a valid Content-Length is refused (411). */
  readonly requireContentLength: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    requestSizeLimit: RequestSizeLimitSpec
  }
}
