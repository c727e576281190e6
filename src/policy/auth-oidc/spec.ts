/**
 * `oidc` (SecurityPolicy, Envoy Gateway's OIDC field names) in the IR. The client secret must
 * travel (the token endpoint needs it): it sits under `clientSecret`, a SECRET_FIELDS name.
 */
export interface OidcSpec {
  readonly issuer: string
  /** Override discovery (EG provider.authorizationEndpoint / tokenEndpoint). */
  readonly authorizationEndpoint?: string
  readonly tokenEndpoint?: string
  readonly clientID: string
  readonly clientSecret: string
  /** Where the provider sends the browser back; its path is answered by the gateway. */
  readonly redirectURL: string
  readonly logoutPath: string
  /** Always with "openid". */
  readonly scopes: readonly string[]
  /** Send the access token upstream as Authorization: Bearer. */
  readonly forwardAccessToken: boolean
  /** Use the refresh token shortly before the access token expires. */
  readonly refreshToken: boolean
  readonly cookieDomain?: string
  readonly postLogoutRedirectURI?: string
  /** ID token claims set as upstream request headers (Portico extension, the jwt feature's shape). */
  readonly claimToHeaders: readonly { readonly header: string; readonly claim: string }[]
}

declare module '../kind.ts' {
  interface PolicySpecs {
    oidc: OidcSpec
  }
}
