/**
 * `jwt` (SecurityPolicy, Envoy Gateway's JWT field names) in the IR. Key sets are public keys:
 * inline JWKS text (localJWKS Inline or a ConfigMap's `jwks`) or a URI fetched by the runtime.
 */
export interface JwtExtractor {
  readonly headers?: readonly { readonly name: string; readonly valuePrefix?: string }[]
  readonly cookies?: readonly string[]
  readonly params?: readonly string[]
}

export interface JwtProviderSpec {
  readonly name: string
  /** Required `iss` when set. */
  readonly issuer?: string
  /** One of these must be in `aud` when set. */
  readonly audiences?: readonly string[]
  readonly remoteJWKS?: { readonly uri: string; readonly cacheDurationMs: number }
  /** JWKS JSON text. */
  readonly localJWKS?: string
  readonly claimToHeaders?: readonly { readonly header: string; readonly claim: string }[]
  /** Default: Authorization with the "Bearer " prefix. */
  readonly extractFrom?: JwtExtractor
}

export interface JwtSpec {
  readonly providers: readonly JwtProviderSpec[]
  /** A request without any token passes (one with an invalid token is still refused). */
  readonly optional: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    jwt: JwtSpec
  }
}
