import type { ConsumerIdentity } from '../consumer/identity.ts'

/**
 * `jwtCredentials`: JWTs signed with a consumer's own credential (Kong's jwt plugin), found by
 * the value of one claim (`iss` by default). Unlike `jwt` (key sets of identity providers), a
 * credential may be an HMAC secret. Everything secret sits under `credentials` (a SECRET_FIELDS
 * name: /config shows it redacted).
 */
export interface JwtCredential {
  /** The key claim's value that selects this credential. */
  readonly key: string
  readonly algorithm: 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'ES256' | 'ES384'
  /** HS*: the secret (base64 of the bytes when the plugin says secret_is_base64). */
  readonly secret?: string
  readonly secretIsBase64?: boolean
  /** RS* / ES*: the public key, PEM. */
  readonly publicKeyPem?: string
  readonly consumer: ConsumerIdentity
}

export interface JwtCredentialsSpec {
  readonly credentials: readonly JwtCredential[]
  readonly keyClaim: string
  /** Lower-case header names; "Bearer " is stripped when present. */
  readonly headers: readonly string[]
  readonly params: readonly string[]
  readonly cookies: readonly string[]
  /** exp and/or nbf: checked (Kong checks only the claims listed). */
  readonly claimsToVerify: readonly ('exp' | 'nbf')[]
  /** Seconds; 0 = no limit on how far in the future exp may be (needs exp in claimsToVerify). */
  readonly maximumExpiration: number
  readonly anonymous?: ConsumerIdentity
  readonly skipPreflight?: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    jwtCredentials: JwtCredentialsSpec
  }
}
