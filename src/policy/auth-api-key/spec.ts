/**
 * `apiKeyAuth` (SecurityPolicy, Envoy Gateway's APIKeyAuth field names) as it travels in the IR.
 * Keys are never in the IR: only their SHA-256, under `credentials` (a SECRET_FIELDS name, so
 * /config shows it redacted anyway).
 */
export interface ApiKeySource {
  readonly headers?: readonly string[]
  readonly params?: readonly string[]
  readonly cookies?: readonly string[]
}

export interface ApiKeyAuthSpec {
  /** Client ID and the base64 SHA-256 of its key, from the credentialRefs Secrets. */
  readonly credentials: readonly { readonly clientID: string; readonly sha256: string }[]
  /** Where the key is read from; the first source that carries one is used. */
  readonly extractFrom: readonly ApiKeySource[]
  /** Send the matched client ID upstream in this header. */
  readonly forwardClientIDHeader?: string
  /** Remove the key (header or cookie) before the request goes upstream. */
  readonly sanitize: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    apiKeyAuth: ApiKeyAuthSpec
  }
}
