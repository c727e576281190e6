/**
 * SecurityPolicy runtimes (apiKeyAuth, basicAuth, jwt, authorization, policyRejected): their
 * semantics on the PolicyRequest view, then the shared contract (policy.case.ts) on both paths.
 * Keys and tokens are real: generated and signed here with jose.
 */
import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import { PolicyStateRegistry } from '../../src/dataplane/policy-state.ts'
import { apiKeyAuthRuntime } from '../../src/policy/auth-api-key/runtime.ts'
import { basicAuthRuntime } from '../../src/policy/auth-basic/runtime.ts'
import { parseHtpasswd } from '../../src/policy/auth-basic/htpasswd.ts'
import { jwtRuntime } from '../../src/policy/auth-jwt/runtime.ts'
import type { JwtSpec } from '../../src/policy/auth-jwt/spec.ts'
import { authorizationRuntime } from '../../src/policy/authorization/runtime.ts'
import type { PolicyRequest, Verdict } from '../../src/policy/runtime.ts'
import { runPolicyCase, strictRequest, type PathResult } from './policy.case.ts'

const ctx = () => ({ pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined })
const sha = (k: string) => createHash('sha256').update(k).digest('base64')
const status = (v: Verdict | Promise<Verdict>) => (v instanceof Promise ? 'async' : (v?.status ?? 'pass'))
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`

// ---------------------------------------------------------------- keys and tokens

const rsa = await generateKeyPair('RS256', { extractable: true })
const ec = await generateKeyPair('ES256', { extractable: true })
const ed = await generateKeyPair('EdDSA', { extractable: true })
const other = await generateKeyPair('RS256', { extractable: true })
const jwk = async (k: CryptoKey, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg, use: 'sig' })
const JWKS = JSON.stringify({ keys: [await jwk(rsa.publicKey, 'rsa1', 'RS256'), await jwk(ec.publicKey, 'ec1', 'ES256'), await jwk(ed.publicKey, 'ed1', 'EdDSA')] })
const ISS = 'https://issuer.test'
const now = () => Math.floor(Date.now() / 1000)

async function token(opts: { key?: CryptoKey; alg?: string; kid?: string; iss?: string; aud?: string; exp?: number; nbf?: number; claims?: Record<string, unknown> } = {}): Promise<string> {
  const alg = opts.alg ?? 'RS256'
  const jwt = new SignJWT({ sub: 'alice', scope: 'read write', groups: ['dev', 'ops'], org: { team: 'edge' }, ...opts.claims })
    .setProtectedHeader({ alg, kid: opts.kid ?? 'rsa1' })
    .setIssuer(opts.iss ?? ISS)
    .setAudience(opts.aud ?? 'api')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? now() + 600)
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf)
  return jwt.sign(opts.key ?? rsa.privateKey)
}

const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
const GOOD = await token()
const GOOD_EC = await token({ key: ec.privateKey, alg: 'ES256', kid: 'ec1' })
const GOOD_ED = await token({ key: ed.privateKey, alg: 'EdDSA', kid: 'ed1' })
const EXPIRED = await token({ exp: now() - 3600 })
const NOT_YET = await token({ nbf: now() + 3600 })
const WRONG_AUD = await token({ aud: 'other' })
const WRONG_ISS = await token({ iss: 'https://evil.test' })
const WRONG_KEY = await token({ key: other.privateKey })
const [h, p, s] = GOOD.split('.') as [string, string, string]
const TAMPERED = `${h}.${b64url({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'mallory' })}.${s}`
const ALG_NONE = `${b64url({ alg: 'none', kid: 'rsa1' })}.${p}.`
// HMAC keyed with the RSA public key's JWK text (the classic key-confusion attack)
const HS_CONFUSED = await new SignJWT({ sub: 'alice' })
  .setProtectedHeader({ alg: 'HS256', kid: 'rsa1' })
  .setIssuer(ISS)
  .setAudience('api')
  .setExpirationTime(now() + 600)
  .sign(new TextEncoder().encode(JWKS))

const JWT_SPEC: JwtSpec = {
  providers: [{ name: 'main', issuer: ISS, audiences: ['api'], localJWKS: JWKS, claimToHeaders: [{ header: 'x-user', claim: 'sub' }, { header: 'x-team', claim: 'org.team' }] }],
  optional: false,
}

async function jwtVerdict(spec: JwtSpec, headers: Record<string, string>, state = ctx()) {
  const policy = jwtRuntime.compile({ name: 'jwt', id: 'jwt-test', spec }, state)
  const req = strictRequest(headers)
  const first = policy.onRequest!(req)
  const v = first instanceof Promise ? await first : first
  return { status: v?.status ?? 200, async: first instanceof Promise, req, reply: v }
}

describe('jwt semantics', () => {
  test('good tokens pass (RS256, ES256, EdDSA); claims go upstream', async () => {
    for (const t of [GOOD, GOOD_EC, GOOD_ED]) expect((await jwtVerdict(JWT_SPEC, { authorization: `Bearer ${t}` })).status).toBe(200)
  })

  test('refused: missing, expired, not yet valid, wrong audience, wrong issuer, wrong key, tampered, alg none, HMAC with the public key, garbage', async () => {
    const cases = { none: undefined, EXPIRED, NOT_YET, WRONG_AUD, WRONG_ISS, WRONG_KEY, TAMPERED, ALG_NONE, HS_CONFUSED, garbage: 'not.a.jwt' }
    for (const [name, t] of Object.entries(cases)) {
      const r = await jwtVerdict(JWT_SPEC, t ? { authorization: `Bearer ${t}` } : {})
      expect([name, r.status]).toEqual([name, 401])
      expect(r.reply!.headers).toEqual([['www-authenticate', 'Bearer realm="portico"']])
      expect(r.reply!.body).toBe('unauthorized\n')
    }
  })

  test('a verified token is cached: the second request answers synchronously, across a recompile', async () => {
    const state = ctx()
    const first = await jwtVerdict(JWT_SPEC, { authorization: `Bearer ${GOOD}` }, state)
    expect(first.async).toBe(true)
    const second = await jwtVerdict(JWT_SPEC, { authorization: `Bearer ${GOOD}` }, state)
    expect(second.async).toBe(false)
    expect(second.status).toBe(200)
    // a refused token is remembered too (no repeated signature checks for garbage)
    await jwtVerdict(JWT_SPEC, { authorization: `Bearer ${TAMPERED}` }, state)
    expect((await jwtVerdict(JWT_SPEC, { authorization: `Bearer ${TAMPERED}` }, state)).async).toBe(false)
    // another audience list: the cached outcome does not apply
    const stricter = { ...JWT_SPEC, providers: [{ ...JWT_SPEC.providers[0]!, audiences: ['admin'] }] }
    expect((await jwtVerdict(stricter, { authorization: `Bearer ${GOOD}` }, state)).status).toBe(401)
  })

  test('optional: no token passes, a bad one does not', async () => {
    const spec = { ...JWT_SPEC, optional: true }
    expect((await jwtVerdict(spec, {})).status).toBe(200)
    expect((await jwtVerdict(spec, { authorization: `Bearer ${EXPIRED}` })).status).toBe(401)
  })

  test('extractFrom: header with prefix, cookie, param', async () => {
    const spec: JwtSpec = { providers: [{ ...JWT_SPEC.providers[0]!, extractFrom: { headers: [{ name: 'X-Token', valuePrefix: 'JWT ' }], cookies: ['session'], params: ['access_token'] } }], optional: false }
    expect((await jwtVerdict(spec, { 'x-token': `JWT ${GOOD}` })).status).toBe(200)
    expect((await jwtVerdict(spec, { cookie: `a=b; session=${GOOD}` })).status).toBe(200)
    expect((await jwtVerdict(spec, { authorization: `Bearer ${GOOD}` })).status).toBe(401)
  })

  test('claimToHeaders: strings as is, nested claims by dots', async () => {
    const policy = jwtRuntime.compile({ name: 'jwt', id: 'x', spec: JWT_SPEC }, ctx())
    const edits = new Map<string, string | null>()
    const req = { ...strictRequest({ authorization: `Bearer ${GOOD}` }), setUpstreamHeader: (n: string, v: string) => void edits.set(n, v), removeUpstreamHeader: (n: string) => void edits.set(n, null) } as PolicyRequest
    const v = policy.onRequest!(req)
    expect(v instanceof Promise ? await v : v).toBeUndefined()
    expect(edits.get('x-user')).toBe('alice')
    expect(edits.get('x-team')).toBe('edge')
  })
})

describe('apiKeyAuth semantics', () => {
  const spec = { credentials: [{ clientID: 'client-a', sha256: sha('key-a') }, { clientID: 'client-b', sha256: sha('key-b') }], extractFrom: [{ headers: ['x-api-key'] }, { cookies: ['apikey'], params: ['api_key'] }], forwardClientIDHeader: 'x-client-id', sanitize: true }
  const run = (headers: Record<string, string>, query = '') => {
    const edits = new Map<string, string | null>()
    const req = { ...strictRequest(headers), query, setUpstreamHeader: (n: string, v: string) => void edits.set(n, v), removeUpstreamHeader: (n: string) => void edits.set(n, null) } as PolicyRequest
    const v = apiKeyAuthRuntime.compile({ name: 'apiKeyAuth', id: 'k', spec }, ctx()).onRequest!(req)
    return { status: status(v), edits, v }
  }
  test('a known key passes, the client ID goes upstream, the key does not', () => {
    const r = run({ 'x-api-key': 'key-b' })
    expect(r.status).toBe('pass')
    expect(r.edits.get('x-client-id')).toBe('client-b')
    expect(r.edits.get('x-api-key')).toBeNull()
    const c = run({ cookie: 'x=1; apikey=key-a; y=2' })
    expect(c.status).toBe('pass')
    expect(c.edits.get('cookie')).toBe('x=1; y=2')
    expect(run({}, '?api_key=key-a').status).toBe('pass')
  })
  test('missing or unknown: 401 naming the scheme, nothing else', () => {
    for (const h of [{}, { 'x-api-key': 'nope' }, { 'x-api-key': 'key-a ' }] as Record<string, string>[]) {
      const r = run(h)
      expect(r.status).toBe(401)
      expect((r.v as { headers: unknown }).headers).toEqual([['www-authenticate', 'API-Key realm="portico"']])
    }
  })
})

describe('basicAuth semantics', () => {
  const bcrypt = Bun.password.hashSync('s3cret', { algorithm: 'bcrypt', cost: 4 }).replace('$2b$', '$2y$')
  const sha1 = `{SHA}${createHash('sha1').update('hunter2').digest('base64')}`
  const entries = parseHtpasswd(`alice:${bcrypt}\nbob:${sha1}\n`)
  test('htpasswd: bcrypt and {SHA} parsed, other formats refused', () => {
    expect(Array.isArray(entries)).toBe(true)
    expect(parseHtpasswd('carol:$apr1$abc$defghijklmnopqrstuvwx.')).toContain('unsupported hash')
    expect(parseHtpasswd('dave:plaintext')).toContain('unsupported hash')
    expect(parseHtpasswd('')).toContain('no users')
  })
  test('bcrypt: first check asynchronous, then cached; {SHA} synchronous; wrong ones 401', async () => {
    const c = ctx()
    const policy = () => basicAuthRuntime.compile({ name: 'basicAuth', id: 'b', spec: { htpasswd: entries as { user: string; hash: string }[], forwardUsernameHeader: 'x-user' } }, c)
    const first = policy().onRequest!(strictRequest({ authorization: basic('alice', 's3cret') }))
    expect(first instanceof Promise).toBe(true)
    expect(await first).toBeUndefined()
    expect(status(policy().onRequest!(strictRequest({ authorization: basic('alice', 's3cret') })))).toBe('pass')
    expect(await policy().onRequest!(strictRequest({ authorization: basic('alice', 'wrong') }))).toMatchObject({ status: 401 })
    expect(await policy().onRequest!(strictRequest({ authorization: basic('mallory', 's3cret') }))).toMatchObject({ status: 401 })
    expect(status(policy().onRequest!(strictRequest({ authorization: basic('bob', 'hunter2') })))).toBe('pass')
    expect(status(policy().onRequest!(strictRequest({ authorization: basic('bob', 'hunter3') })))).toBe(401)
    const none = policy().onRequest!(strictRequest({})) as { headers: unknown }
    expect(none.headers).toEqual([['www-authenticate', 'Basic realm="portico", charset="UTF-8"']])
  })
})

describe('authorization semantics', () => {
  test('client CIDRs, JWT claims and scopes; first match decides; default action', async () => {
    const c = ctx()
    const jwtPolicy = jwtRuntime.compile({ name: 'jwt', id: 'j', spec: JWT_SPEC }, c)
    const authz = authorizationRuntime.compile(
      {
        name: 'authorization',
        id: 'a',
        spec: {
          defaultAction: 'Deny',
          rules: [
            { action: 'Deny', principal: { clientCIDRs: ['192.0.2.0/24'] } },
            { action: 'Allow', principal: { clientCIDRs: ['10.0.0.0/8'] } },
            { action: 'Allow', principal: { jwt: { provider: 'main', claims: [{ name: 'groups', valueType: 'StringArray', values: ['ops'] }], scopes: ['read'] } } },
          ],
        },
      },
      c,
    )
    const run = async (ip: string, headers: Record<string, string> = {}) => {
      const req = strictRequest(headers)
      req.clientIp = ip
      if (headers.authorization) {
        const v = jwtPolicy.onRequest!(req)
        if ((v instanceof Promise ? await v : v) !== undefined) return 'jwt refused'
      }
      return status(authz.onRequest!(req))
    }
    expect(await run('10.1.2.3')).toBe('pass')
    expect(await run('192.0.2.9')).toBe(403)
    expect(await run('203.0.113.1')).toBe(403)
    expect(await run('203.0.113.1', { authorization: `Bearer ${GOOD}` })).toBe('pass')
    const noOps = await token({ claims: { groups: ['dev'] } })
    expect(await run('203.0.113.1', { authorization: `Bearer ${noOps}` })).toBe(403)
    const noScope = await token({ claims: { scope: 'write' } })
    expect(await run('203.0.113.1', { authorization: `Bearer ${noScope}` })).toBe(403)
    // a deny rule beats a later allow
    expect(await run('192.0.2.9', { authorization: `Bearer ${GOOD}` })).toBe(403)
  })
})

// ---------------------------------------------------------------- the shared contract, both paths

const seen = (r: PathResult, name: string) => r.upstream?.headers[name]

runPolicyCase({
  name: 'apiKeyAuth',
  variants: [
    {
      label: 'header and cookie keys, client ID forwarded, sanitized',
      spec: { credentials: [{ clientID: 'client-a', sha256: sha('key-a') }], extractFrom: [{ headers: ['x-api-key'], cookies: ['apikey'] }], forwardClientIDHeader: 'x-client-id', sanitize: true },
      requests: [
        {
          name: 'a good key reaches the backend without the key, with the client ID',
          headers: { 'x-api-key': 'key-a' },
          expect: (r) => {
            expect(r.status).toBe(200)
            expect(seen(r, 'x-api-key')).toBeUndefined()
            expect(seen(r, 'x-client-id')).toBe('client-a')
          },
        },
        { name: 'no key: 401', expect: (r) => expect(r.status).toBe(401) },
        { name: 'a wrong key: 401', headers: { 'x-api-key': 'key-b' }, expect: (r) => expect(r.status).toBe(401) },
        { name: 'a spoofed client ID header is replaced', headers: { cookie: 'apikey=key-a', 'x-client-id': 'admin' }, expect: (r) => expect(seen(r, 'x-client-id')).toBe('client-a') },
      ],
    },
  ],
})

const BCRYPT = Bun.password.hashSync('s3cret', { algorithm: 'bcrypt', cost: 4 })
runPolicyCase({
  name: 'basicAuth',
  variants: [
    {
      label: 'bcrypt and {SHA} users',
      spec: { htpasswd: [{ user: 'alice', hash: BCRYPT }, { user: 'bob', hash: `{SHA}${createHash('sha1').update('hunter2').digest('base64')}` }], forwardUsernameHeader: 'x-user' },
      requests: [
        { name: 'bcrypt user passes (first via the pipeline, then direct)', headers: { authorization: basic('alice', 's3cret') }, expect: (r) => expect(seen(r, 'x-user')).toBe('alice') },
        { name: '{SHA} user passes', headers: { authorization: basic('bob', 'hunter2') }, expect: (r) => expect(seen(r, 'x-user')).toBe('bob') },
        { name: 'wrong password: 401', headers: { authorization: basic('alice', 'nope') }, expect: (r) => expect(r.status).toBe(401) },
        { name: 'none: 401', expect: (r) => expect(r.status).toBe(401) },
      ],
    },
  ],
})

runPolicyCase({
  name: 'jwt',
  variants: [
    {
      label: 'local JWKS, claim to header',
      spec: JWT_SPEC,
      requests: [
        {
          name: 'good token: 200 with the claim header',
          headers: { authorization: `Bearer ${GOOD}` },
          expect: (r) => {
            expect(r.status).toBe(200)
            expect(seen(r, 'x-user')).toBe('alice')
          },
        },
        { name: 'a client-sent claim header is dropped', headers: { authorization: `Bearer ${GOOD_EC}`, 'x-team': 'spoof' }, expect: (r) => expect(seen(r, 'x-team')).toBe('edge') },
        { name: 'expired: 401', headers: { authorization: `Bearer ${EXPIRED}` }, expect: (r) => expect(r.status).toBe(401) },
        { name: 'wrong audience: 401', headers: { authorization: `Bearer ${WRONG_AUD}` }, expect: (r) => expect(r.status).toBe(401) },
        { name: 'alg none: 401', headers: { authorization: `Bearer ${ALG_NONE}` }, expect: (r) => expect(r.status).toBe(401) },
        { name: 'no token: 401', expect: (r) => expect(r.status).toBe(401) },
      ],
    },
  ],
})

runPolicyCase({
  name: 'authorization',
  variants: [
    {
      label: 'loopback denied by CIDR',
      spec: { defaultAction: 'Allow', rules: [{ action: 'Deny', principal: { clientCIDRs: ['127.0.0.0/8', '::1/128'] } }] },
      requests: [{ name: 'loopback client: 403', expect: (r) => expect(r.status).toBe(403) }],
    },
    {
      label: 'loopback allowed, default deny',
      spec: { defaultAction: 'Deny', rules: [{ action: 'Allow', principal: { clientCIDRs: ['127.0.0.0/8', '::1/128'] } }] },
      requests: [{ name: 'loopback client: 200', expect: (r) => expect(r.status).toBe(200) }],
    },
  ],
})

runPolicyCase({
  name: 'policyRejected',
  variants: [{ label: 'an invalid SecurityPolicy', spec: { policy: 'SecurityPolicy default/broken' }, requests: [{ name: 'every request: 500', expect: (r) => expect(r.status).toBe(500) }] }],
})

runPolicyCase({
  name: 'extAuth',
  variants: [
    {
      // the harness's pool p1 (echo servers answering 200) is the authorization service here
      label: 'an authorization service that allows, its header copied upstream',
      spec: { pool: 'p1', path: '/', headersToExtAuth: ['x-user-token'], headersToBackend: ['x-echo-name'], failOpen: false, timeoutMs: 2000 },
      requests: [
        {
          name: 'allowed: the backend sees the header the service answered with',
          headers: { 'x-user-token': 't1' },
          expect: (r) => {
            expect(r.status).toBe(200)
            expect(['a', 'b']).toContain(seen(r, 'x-echo-name')!)
          },
        },
      ],
    },
    {
      label: 'the service missing from the snapshot: 503 (failOpen false)',
      spec: { pool: 'nowhere', path: '/', headersToExtAuth: [], headersToBackend: [], failOpen: false, timeoutMs: 2000 },
      requests: [{ name: '503', expect: (r) => expect(r.status).toBe(503) }],
    },
    {
      label: 'the service missing, failOpen',
      spec: { pool: 'nowhere', path: '/', headersToExtAuth: [], headersToBackend: [], failOpen: true, timeoutMs: 2000 },
      requests: [{ name: 'passes', expect: (r) => expect(r.status).toBe(200) }],
    },
  ],
})

describe('oidc sessions', () => {
  test('sealed with a key derived from the client secret: opens on any replica with the same secret, nowhere else; tampering opens nothing', async () => {
    const { Sealer, sessionStore } = await import('../../src/policy/auth-oidc/session.ts')
    const a = new Sealer('client-secret', 'https://issuer|portico')
    const b = new Sealer('client-secret', 'https://issuer|portico')
    const other = new Sealer('another-secret', 'https://issuer|portico')
    const sealed = a.seal({ sub: 'alice' })
    expect(b.open(sealed)).toEqual({ sub: 'alice' })
    expect(other.open(sealed)).toBeUndefined()
    const raw = Buffer.from(sealed, 'base64url')
    raw[raw.length - 1]! ^= 1
    expect(a.open(raw.toString('base64url'))).toBeUndefined()
    expect(a.open('garbage')).toBeUndefined()
    // without --redis-url the session is the cookie itself
    const store = sessionStore(a, 'x')
    expect(store.kind).toBe('cookie')
    const session = { claims: { sub: 'alice' }, accessToken: 'at', expiresAt: Date.now() + 60_000, idToken: 'x'.repeat(4000) }
    const cookie = await store.save(session)
    expect(cookie.length).toBeLessThan(3800) // the ID token is dropped rather than overflow a cookie
    expect(await store.load(cookie)).toMatchObject({ claims: { sub: 'alice' }, accessToken: 'at' })
  })
})

runPolicyCase({
  name: 'oidc',
  variants: [
    {
      // the flow itself runs against a real provider in test/e2e/oidc.test.ts
      label: 'a provider that cannot be reached',
      spec: {
        issuer: 'http://127.0.0.1:9/nowhere',
        clientID: 'portico',
        clientSecret: 'client-secret',
        redirectURL: 'http://policy.test/oauth2/callback',
        logoutPath: '/logout',
        scopes: [],
        forwardAccessToken: false,
        refreshToken: true,
        claimToHeaders: [],
      },
      requests: [
        { name: 'a browser: 503, no login loop', headers: { accept: 'text/html' }, expect: (r) => expect(r.status).toBe(503) },
        { name: 'an API client: 503', expect: (r) => expect(r.status).toBe(503) },
      ],
    },
  ],
})
