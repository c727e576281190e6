/**
 * `basicAuth` (SecurityPolicy, Envoy Gateway's BasicAuth field names) in the IR: the users'
 * htpasswd entries (already hashes: bcrypt or {SHA}), under `htpasswd` (a SECRET_FIELDS name).
 */
export interface BasicAuthSpec {
  readonly htpasswd: readonly { readonly user: string; readonly hash: string }[]
  /** Send the authenticated user name upstream in this header. */
  readonly forwardUsernameHeader?: string
}

declare module '../kind.ts' {
  interface PolicySpecs {
    basicAuth: BasicAuthSpec
  }
}
