// A real OpenID Connect provider for tests (npm oidc-provider, under Node): discovery, JWKS,
// login and consent pages (devInteractions: any user name, any password), authorization code
// with PKCE, refresh tokens, end_session.
//   node test/support/oidc-provider.mjs <port> <client secret> <redirect URI>[,<redirect URI>...] [accessTokenTtlSeconds]
// Prints {"issuer": "..."} once listening; logs each token grant as {"grant": "..."}.
import Provider from 'oidc-provider'

const [port, secret, redirects, ttl] = process.argv.slice(2)
const issuer = `http://127.0.0.1:${port}`
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'portico',
      client_secret: secret,
      redirect_uris: redirects.split(','),
      post_logout_redirect_uris: redirects.split(',').map((u) => new URL('/', u).toString()),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, email: `${id}@example.test`, email_verified: true }) }),
  issueRefreshToken: async () => true,
  // scope claims (email) in the ID token, not only at userinfo
  conformIdTokenClaims: false,
  ttl: { AccessToken: Number(ttl ?? 3600), IdToken: 3600, RefreshToken: 86400, Session: 86400, Grant: 86400, Interaction: 600, AuthorizationCode: 60 },
  cookies: { keys: ['test-cookie-key'] },
  jwks: undefined,
})
provider.on('grant.success', (ctx) => console.log(JSON.stringify({ grant: ctx.oidc.params?.grant_type ?? 'unknown' })))
provider.on('server_error', (_ctx, err) => console.error(String(err)))
provider.listen(Number(port), '127.0.0.1', () => console.log(JSON.stringify({ issuer })))
