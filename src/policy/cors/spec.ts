/**
 * `cors` as a policy feature (Kong's cors plugin; SecurityPolicy's cors could use it too). Unlike
 * the HTTPRoute CORS filter (transform phase), it runs in the client phase: a preflight is
 * answered before authentication, as Kong's plugin priorities do (cors 2000 > jwt, key-auth).
 */
export interface CorsSpec {
  /** Exact origins or patterns with "*" for any labels ("https://*.example.com"); "*" or empty: any origin. */
  readonly origins: readonly string[]
  readonly methods: readonly string[]
  /** Empty: echo Access-Control-Request-Headers. */
  readonly headers: readonly string[]
  readonly exposedHeaders: readonly string[]
  readonly credentials: boolean
  readonly maxAgeSeconds?: number
  /** Forward preflights to the backend instead of answering them. */
  readonly preflightContinue: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    cors: CorsSpec
  }
}
