/**
 * `apiKeyAuth` (SecurityPolicy, Envoy Gateway's APIKeyAuth field names) as it travels in the IR.
 * Keys are never in the IR: only their SHA-256, under `credentials` (a SECRET_FIELDS name, so
 * /config shows it redacted anyway).
 */
import type { ConsumerIdentity, ErrorStyle } from '../consumer/identity.ts'

export interface ApiKeySource {
  readonly headers?: readonly string[]
  readonly params?: readonly string[]
  readonly cookies?: readonly string[]
}

export interface ApiKeyAuthSpec {
  /**
   * Client ID and the base64 SHA-256 of its key, from the credentialRefs Secrets; `consumer`
   * when the key belongs to a consumer (Kong's key-auth credentials of a KongConsumer).
   */
  readonly credentials: readonly { readonly clientID: string; readonly sha256: string; readonly consumer?: ConsumerIdentity }[]
  /** Where the key is read from; the first source that carries one is used. */
  readonly extractFrom: readonly ApiKeySource[]
  /** Send the matched client ID upstream in this header. */
  readonly forwardClientIDHeader?: string
  /** Remove the key (header or cookie) before the request goes upstream. */
  readonly sanitize: boolean
  /** Kong-shaped refusals (JSON message, `WWW-Authenticate: Key realm="kong"`); default Portico's. */
  readonly errorStyle?: ErrorStyle
  /** Without a valid key the request goes on as this consumer (Kong's `anonymous`); also skipped when an earlier plugin authenticated. */
  readonly anonymous?: ConsumerIdentity
  /** OPTIONS requests pass without a key (Kong's `run_on_preflight: false`). */
  readonly skipPreflight?: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    apiKeyAuth: ApiKeyAuthSpec
  }
}
