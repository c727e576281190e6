/**
 * SecurityPolicy (Envoy Gateway's api/v1alpha1/securitypolicy_types.go field names): who may
 * call a route. Features: apiKeyAuth, basicAuth, jwt, extAuth, oidc (authn phase), authorization (authz).
 * Referenced Secrets and ConfigMaps are read here (TranslateContext); what reaches the IR is
 * hashed (API keys: SHA-256) or already a hash (htpasswd), under SECRET_FIELDS names.
 *
 * Fail closed: a SecurityPolicy that is invalid for any reason (schema, a field not supported
 * yet, a missing or malformed Secret) makes its targets answer 500 (`failClosed`), so a route
 * is never served unauthenticated because its policy was rejected.
 */
import { createHash } from 'node:crypto'
import { parseDuration } from '../../translate/duration.ts'
import { array, boolean, duration, exactlyOne, integer, object, string, unsupported, type ObjectSchema } from '../schema.ts'
import { policySpecSchema } from '../targets.ts'
import type { Feature, PolicyTranslator, TranslateContext } from '../translators.ts'
import type { ApiKeyAuthSpec, ApiKeySource } from '../auth-api-key/spec.ts'
import { parseHtpasswd } from '../auth-basic/htpasswd.ts'
import type { JwtProviderSpec } from '../auth-jwt/spec.ts'
import { parseJwks } from '../auth-jwt/jwks.ts'
import type { AuthorizationRuleSpec } from '../authorization/spec.ts'

const HEADER_NAME = string({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' })

const secretRef = (description: string): ObjectSchema =>
  object(
    {
      group: string({ enum: [''], description: 'Core group ("").' }),
      kind: string({ enum: ['Secret'], description: 'Secret.' }),
      name: string({ minLength: 1, maxLength: 253 }),
      namespace: string({ minLength: 1, maxLength: 63, description: 'Another namespace needs a ReferenceGrant there.' }),
    },
    { required: ['name'], description },
  )

const schema = policySpecSchema(['Gateway', 'HTTPRoute', 'GRPCRoute', 'TCPRoute'], {
  apiKeyAuth: object(
    {
      credentialRefs: array(secretRef('A Secret whose keys are client IDs and values their API keys.'), { minItems: 1 }),
      extractFrom: array(
        object({
          headers: array(HEADER_NAME),
          params: array(string({ minLength: 1 })),
          cookies: array(string({ minLength: 1 })),
        }),
        { minItems: 1, description: 'Where the key is read from; the first source holding one is used.' },
      ),
      forwardClientIDHeader: { ...HEADER_NAME, description: 'Send the client ID upstream in this header.' },
      sanitize: boolean({ description: 'Remove the key from the request before it goes upstream.' }),
    },
    { required: ['credentialRefs', 'extractFrom'], description: 'API keys from Secrets.' },
  ),
  basicAuth: object(
    {
      users: secretRef('A Secret with an ".htpasswd" key (bcrypt or {SHA} entries).'),
      forwardUsernameHeader: { ...HEADER_NAME, description: 'Send the user name upstream in this header.' },
    },
    { required: ['users'], description: 'HTTP Basic authentication.' },
  ),
  jwt: object(
    {
      optional: boolean({ description: 'Let requests without a token through (an invalid token is still refused).' }),
      providers: array(
        object(
          {
            name: string({ minLength: 1, maxLength: 253 }),
            issuer: string({ maxLength: 253 }),
            audiences: array(string(), { maxItems: 8 }),
            remoteJWKS: object(
              {
                uri: string({ minLength: 1, maxLength: 253, pattern: '^https?://' }),
                cacheDuration: duration('How long fetched keys are used before a background refetch (default 5m).'),
                backendRef: unsupported(),
                backendRefs: unsupported(),
                backendSettings: unsupported(),
              },
              { required: ['uri'] },
            ),
            localJWKS: object(
              {
                type: string({ enum: ['Inline', 'ValueRef'] }),
                inline: string({ minLength: 1 }),
                valueRef: object({ group: string({ enum: [''] }), kind: string({ enum: ['ConfigMap'] }), name: string({ minLength: 1 }) }, { required: ['kind', 'name'] }),
              },
              { rules: [exactlyOne(['inline', 'valueRef'], 'localJWKS needs exactly one of inline or valueRef')] },
            ),
            claimToHeaders: array(object({ header: HEADER_NAME, claim: string({ minLength: 1 }) }, { required: ['header', 'claim'] })),
            recomputeRoute: unsupported(),
            extractFrom: object({
              headers: array(object({ name: HEADER_NAME, valuePrefix: string() }, { required: ['name'] })),
              cookies: array(string({ minLength: 1 })),
              params: array(string({ minLength: 1 })),
            }),
          },
          { required: ['name'], rules: [exactlyOne(['remoteJWKS', 'localJWKS'], 'a provider needs exactly one of remoteJWKS or localJWKS')] },
        ),
        { minItems: 1, maxItems: 4 },
      ),
    },
    { required: ['providers'], description: 'JSON Web Tokens verified against JWKS.' },
  ),
  authorization: object(
    {
      defaultAction: string({ enum: ['Allow', 'Deny'], description: 'When no rule matches (default Deny).' }),
      rules: array(
        object(
          {
            name: string({ maxLength: 253 }),
            action: string({ enum: ['Allow', 'Deny'] }),
            operation: unsupported(),
            principal: object(
              {
                clientCIDRs: array(string({ minLength: 1 }), { minItems: 1 }),
                jwt: object(
                  {
                    provider: string({ minLength: 1 }),
                    claims: array(
                      object({ name: string({ minLength: 1 }), valueType: string({ enum: ['String', 'StringArray'] }), values: array(string(), { minItems: 1 }) }, { required: ['name', 'values'] }),
                    ),
                    scopes: array(string({ minLength: 1 })),
                  },
                  { required: ['provider'] },
                ),
                headers: unsupported(),
                sourceCIDRs: unsupported(),
              },
              { minProperties: 1 },
            ),
          },
          { required: ['action', 'principal'] },
        ),
      ),
    },
    { description: 'Allow or deny by client address and JWT claims (403).' },
  ),
  cors: unsupported(),
  csrf: unsupported(),
  extAuth: object(
    {
      http: object(
        {
          backendRef: object(
            { group: string({ enum: [''] }), kind: string({ enum: ['Service'] }), name: string({ minLength: 1 }), namespace: string({ minLength: 1 }), port: integer({ minimum: 1, maximum: 65535 }) },
            { required: ['name', 'port'], description: 'The authorization Service (another namespace needs a ReferenceGrant).' },
          ),
          backendRefs: array(
            object(
              { group: string({ enum: [''] }), kind: string({ enum: ['Service'] }), name: string({ minLength: 1 }), namespace: string({ minLength: 1 }), port: integer({ minimum: 1, maximum: 65535 }), weight: unsupported() },
              { required: ['name', 'port'] },
            ),
            { minItems: 1, maxItems: 1 },
          ),
          backendSettings: unsupported(),
          path: string({ pattern: '^/', description: 'Prepended to the request path in the check request.' }),
          headersToBackend: array(HEADER_NAME, { description: "Headers of the service's 2xx answer set on the upstream request." }),
        },
        { rules: [exactlyOne(['backendRef', 'backendRefs'], 'http needs exactly one of backendRef or backendRefs')] },
      ),
      grpc: unsupported(),
      headersToExtAuth: array(HEADER_NAME, { description: 'Client headers sent to the service (Authorization always is).' }),
      bodyToExtAuth: unsupported(),
      failOpen: boolean({ description: 'Let requests through when the service is unreachable, slow or failing (default false: 503).' }),
      recomputeRoute: unsupported(),
      contextExtensions: unsupported(),
      timeout: duration('How long the check may take (default 10s).'),
    },
    { required: ['http'], description: 'Ask an HTTP authorization service about every request.' },
  ),
  oidc: object(
    {
      provider: object(
        {
          issuer: string({ minLength: 1, pattern: '^https?://', description: 'Discovery: <issuer>/.well-known/openid-configuration.' }),
          authorizationEndpoint: string({ pattern: '^https?://' }),
          tokenEndpoint: string({ pattern: '^https?://' }),
          backendRef: unsupported(),
          backendRefs: unsupported(),
          backendSettings: unsupported(),
        },
        { required: ['issuer'] },
      ),
      clientID: string({ minLength: 1 }),
      clientIDRef: unsupported(),
      clientSecret: secretRef('A Secret with the client secret under the key "client-secret".'),
      cookieNames: unsupported(),
      cookieConfig: unsupported(),
      cookieDomain: string({ minLength: 1 }),
      scopes: array(string({ minLength: 1 })),
      resources: unsupported(),
      redirectURL: string({ pattern: '^https?://[^/]+/', description: 'The callback URL registered with the provider; its path must reach a route under this policy.' }),
      denyRedirect: unsupported(),
      logoutPath: string({ pattern: '^/', description: 'Ends the session (default /logout).' }),
      forwardAccessToken: boolean({ description: 'Send the access token upstream as Authorization: Bearer.' }),
      defaultTokenTTL: unsupported(),
      refreshToken: boolean({ description: 'Refresh the tokens before the access token expires (default true).' }),
      defaultRefreshTokenTTL: unsupported(),
      passThroughAuthHeader: unsupported(),
      claimToHeaders: array(object({ header: HEADER_NAME, claim: string({ minLength: 1 }) }, { required: ['header', 'claim'] }), {
        description: 'Portico extension: ID token claims set as upstream request headers.',
      }),
    },
    { required: ['provider', 'clientID', 'clientSecret', 'redirectURL'], description: 'Browser login with OpenID Connect (authorization code, PKCE).' },
  ),
  mergeType: unsupported(),
})

type Json = Record<string, any>

function secretOf(ctx: TranslateContext, ref: Json, what: string): Readonly<Record<string, string>> | string {
  const data = ctx.secret(ref.name, ref.namespace)
  return typeof data === 'string' ? `${what}: ${data}` : data
}

function apiKeyAuth(spec: Json, ctx: TranslateContext): ApiKeyAuthSpec | string {
  const credentials: { clientID: string; sha256: string }[] = []
  const seen = new Set<string>()
  for (const ref of spec.credentialRefs as Json[]) {
    const data = secretOf(ctx, ref, 'apiKeyAuth.credentialRefs')
    if (typeof data === 'string') return data
    for (const [clientID, key] of Object.entries(data)) {
      if (key.length === 0) return `apiKeyAuth: Secret ${ref.name} has an empty key for client ${clientID}`
      const sha256 = createHash('sha256').update(key).digest('base64')
      if (seen.has(sha256)) return `apiKeyAuth: two clients share one API key (Secret ${ref.name}, client ${clientID})`
      seen.add(sha256)
      credentials.push({ clientID, sha256 })
    }
  }
  if (credentials.length === 0) return 'apiKeyAuth: the credentialRefs Secrets hold no keys'
  const extractFrom = (spec.extractFrom as Json[]).map((s) => {
    const out: { -readonly [K in keyof ApiKeySource]: ApiKeySource[K] } = {}
    if (s.headers?.length) out.headers = [...s.headers]
    if (s.params?.length) out.params = [...s.params]
    if (s.cookies?.length) out.cookies = [...s.cookies]
    return out
  })
  if (spec.sanitize === true && extractFrom.some((s) => s.params?.length)) return 'apiKeyAuth: sanitize with query params is not supported yet'
  return { credentials, extractFrom, sanitize: spec.sanitize === true, ...(spec.forwardClientIDHeader ? { forwardClientIDHeader: spec.forwardClientIDHeader } : {}) }
}

function jwtProvider(p: Json, ctx: TranslateContext): JwtProviderSpec | string {
  const out: { -readonly [K in keyof JwtProviderSpec]: JwtProviderSpec[K] } = { name: p.name }
  if (p.issuer) out.issuer = p.issuer
  if (p.audiences?.length) out.audiences = [...p.audiences]
  if (p.remoteJWKS) out.remoteJWKS = { uri: p.remoteJWKS.uri, cacheDurationMs: parseDuration(p.remoteJWKS.cacheDuration) ?? 300_000 }
  else {
    const local = p.localJWKS as Json
    let text: string
    if (local.valueRef) {
      const data = ctx.configMap(local.valueRef.name)
      if (typeof data === 'string') return `jwt.providers[${p.name}].localJWKS: ${data}`
      if (data.jwks === undefined) return `jwt.providers[${p.name}].localJWKS: ConfigMap ${local.valueRef.name} has no "jwks" key`
      text = data.jwks
    } else text = local.inline
    const set = parseJwks(text)
    if (typeof set === 'string') return `jwt.providers[${p.name}].localJWKS ${set}`
    out.localJWKS = JSON.stringify(set)
  }
  if (p.claimToHeaders?.length) out.claimToHeaders = p.claimToHeaders.map((c: Json) => ({ header: c.header, claim: c.claim }))
  if (p.extractFrom) {
    const e = p.extractFrom as Json
    out.extractFrom = {
      ...(e.headers?.length ? { headers: e.headers.map((h: Json) => ({ name: h.name, ...(h.valuePrefix !== undefined ? { valuePrefix: h.valuePrefix } : {}) })) } : {}),
      ...(e.cookies?.length ? { cookies: [...e.cookies] } : {}),
      ...(e.params?.length ? { params: [...e.params] } : {}),
    }
  }
  return out
}

function features(spec: Json, ctx: TranslateContext): Feature[] | string {
  const out: Feature[] = []
  if (spec.apiKeyAuth) {
    const f = apiKeyAuth(spec.apiKeyAuth, ctx)
    if (typeof f === 'string') return f
    out.push({ scope: 'request', name: 'apiKeyAuth', spec: f })
  }
  if (spec.basicAuth) {
    const ref = spec.basicAuth.users as Json
    const data = secretOf(ctx, ref, 'basicAuth.users')
    if (typeof data === 'string') return data
    const text = data['.htpasswd']
    if (text === undefined) return `basicAuth.users: Secret ${ref.name} has no ".htpasswd" key`
    const htpasswd = parseHtpasswd(text)
    if (typeof htpasswd === 'string') return `basicAuth.users: Secret ${ref.name}: ${htpasswd}`
    out.push({ scope: 'request', name: 'basicAuth', spec: { htpasswd, ...(spec.basicAuth.forwardUsernameHeader ? { forwardUsernameHeader: spec.basicAuth.forwardUsernameHeader } : {}) } })
  }
  if (spec.jwt) {
    const providers: JwtProviderSpec[] = []
    const names = new Set<string>()
    for (const p of spec.jwt.providers as Json[]) {
      if (names.has(p.name)) return `jwt: provider name ${p.name} is used twice`
      names.add(p.name)
      const provider = jwtProvider(p, ctx)
      if (typeof provider === 'string') return provider
      providers.push(provider)
    }
    out.push({ scope: 'request', name: 'jwt', spec: { providers, optional: spec.jwt.optional === true } })
  }
  if (spec.extAuth) {
    const e = spec.extAuth as Json
    const ref = (e.http.backendRef ?? e.http.backendRefs[0]) as Json
    const resolved = ctx.service({ name: ref.name, port: ref.port, ...(ref.namespace ? { namespace: ref.namespace } : {}) })
    if (typeof resolved === 'string') return `extAuth.http.backendRef: ${resolved}`
    out.push({
      scope: 'request',
      name: 'extAuth',
      pools: [resolved.pool],
      spec: {
        pool: resolved.pool,
        path: e.http.path ?? '/',
        headersToExtAuth: [...(e.headersToExtAuth ?? [])],
        headersToBackend: [...(e.http.headersToBackend ?? [])],
        failOpen: e.failOpen === true,
        timeoutMs: parseDuration(e.timeout) ?? 10_000,
      },
    })
  }
  if (spec.oidc) {
    const o = spec.oidc as Json
    const data = secretOf(ctx, o.clientSecret, 'oidc.clientSecret')
    if (typeof data === 'string') return data
    const clientSecret = data['client-secret']
    if (!clientSecret) return `oidc.clientSecret: Secret ${o.clientSecret.name} has no "client-secret" key`
    out.push({
      scope: 'request',
      name: 'oidc',
      spec: {
        issuer: o.provider.issuer,
        ...(o.provider.authorizationEndpoint ? { authorizationEndpoint: o.provider.authorizationEndpoint } : {}),
        ...(o.provider.tokenEndpoint ? { tokenEndpoint: o.provider.tokenEndpoint } : {}),
        clientID: o.clientID,
        clientSecret,
        redirectURL: o.redirectURL,
        logoutPath: o.logoutPath ?? '/logout',
        scopes: [...(o.scopes ?? [])],
        forwardAccessToken: o.forwardAccessToken === true,
        refreshToken: o.refreshToken !== false,
        ...(o.cookieDomain ? { cookieDomain: o.cookieDomain } : {}),
        claimToHeaders: (o.claimToHeaders ?? []).map((c: Json) => ({ header: c.header, claim: c.claim })),
      },
    })
  }
  if (spec.authorization) {
    const a = spec.authorization as Json
    const rules: AuthorizationRuleSpec[] = []
    for (const r of (a.rules ?? []) as Json[]) {
      const pr = r.principal as Json
      for (const c of pr.clientCIDRs ?? []) if (!validCidr(c)) return `authorization: ${JSON.stringify(c)} is not a CIDR`
      if (pr.jwt && !(spec.jwt?.providers ?? []).some((p: Json) => p.name === pr.jwt.provider))
        return `authorization: rule ${r.name ?? rules.length} names JWT provider ${pr.jwt.provider}, which this policy's jwt does not define`
      rules.push({
        ...(r.name ? { name: r.name } : {}),
        action: r.action,
        principal: {
          ...(pr.clientCIDRs ? { clientCIDRs: [...pr.clientCIDRs] } : {}),
          ...(pr.jwt
            ? {
                jwt: {
                  provider: pr.jwt.provider,
                  ...(pr.jwt.claims ? { claims: pr.jwt.claims.map((c: Json) => ({ name: c.name, valueType: c.valueType ?? 'String', values: [...c.values] })) } : {}),
                  ...(pr.jwt.scopes ? { scopes: [...pr.jwt.scopes] } : {}),
                },
              }
            : {}),
        },
      })
    }
    out.push({ scope: 'request', name: 'authorization', spec: { defaultAction: a.defaultAction ?? 'Deny', rules } })
  }
  return out
}

function validCidr(c: string): boolean {
  const [addr, len, extra] = c.split('/')
  if (extra !== undefined || !addr) return false
  const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(addr)
  const v6 = !v4 && addr.includes(':')
  if (!v4 && !v6) return false
  if (len === undefined) return true
  const n = Number(len)
  return Number.isInteger(n) && n >= 0 && n <= (v4 ? 32 : 128)
}

export const securityPolicy: PolicyTranslator = {
  kind: 'SecurityPolicy',
  schema,
  targetKinds: ['Gateway', 'HTTPRoute', 'GRPCRoute'],
  features,
  failClosed: true,
}
