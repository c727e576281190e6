/**
 * `basicAuth` (SecurityPolicy, Envoy Gateway's BasicAuth field names) in the IR: the users'
 * htpasswd entries (already hashes: bcrypt or {SHA}), under `htpasswd` (a SECRET_FIELDS name).
 */
import type { ConsumerIdentity, ErrorStyle } from '../consumer/identity.ts'

export interface BasicAuthSpec {
  readonly htpasswd: readonly { readonly user: string; readonly hash: string }[]
  /** Send the authenticated user name upstream in this header. */
  readonly forwardUsernameHeader?: string
  /** The consumer each user belongs to (Kong's basic-auth credentials of a KongConsumer). */
  readonly consumers?: Readonly<Record<string, ConsumerIdentity>>
  /** Kong-shaped refusals (JSON message, `WWW-Authenticate: Basic realm="service"`); default Portico's. */
  readonly errorStyle?: ErrorStyle
  /** Without valid credentials the request goes on as this consumer (Kong's `anonymous`). */
  readonly anonymous?: ConsumerIdentity
  /** Remove Authorization before the request goes upstream (Kong's `hide_credentials`). */
  readonly hideCredentials?: boolean
  /** OPTIONS requests pass without credentials (Kong's `run_on_preflight: false`). */
  readonly skipPreflight?: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    basicAuth: BasicAuthSpec
  }
}
