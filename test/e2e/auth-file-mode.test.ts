/**
 * Authentication end to end in file mode, configured as the README documents it: a routes
 * folder with Secrets, a ConfigMap-free remote JWKS and SecurityPolicies; real sockets. A JWKS
 * server on a local port rotates its keys; tokens are signed here with real keys. The admin
 * views and the log never show a credential.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import type { Server } from 'bun'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route, startGateway } from './support.ts'

const API_KEY = 'pk_live_9f8e7d6c5b4a'
const NEW_API_KEY = 'pk_live_rotated_0001'
const PASSWORD = 'correct horse battery staple'
const BCRYPT = Bun.password.hashSync(PASSWORD, { algorithm: 'bcrypt', cost: 6 }).replace('$2b$', '$2y$')
const SHA_PASSWORD = 'hunter2'
const ISS = 'https://login.portico.test'

let echo: EchoUpstream
let cfg: ConfigDir
let gw: Portico
let port: number
let admin: string
let jwks: Server<undefined>
let served: { keys: JWK[] } = { keys: [] }
let jwksHits = 0
let key1: CryptoKeyPair
let key2: CryptoKeyPair

const secrets = (apiKey: string) => `apiVersion: v1
kind: Secret
metadata: { name: api-clients, namespace: default }
data:
  mobile-app: ${Buffer.from(apiKey).toString('base64')}
---
apiVersion: v1
kind: Secret
metadata: { name: staff, namespace: default }
stringData:
  .htpasswd: |
    alice:${BCRYPT}
    bob:{SHA}${createHash('sha1').update(SHA_PASSWORD).digest('base64')}
`

const policy = (name: string, routeName: string, body: string) => `apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${routeName} }]
${body}`

const policies = (jwksPort: number) =>
  [
    policy(
      'keys',
      'keys',
      `  apiKeyAuth:
    credentialRefs: [{ name: api-clients }]
    extractFrom: [{ headers: [x-api-key] }]
    forwardClientIDHeader: x-client-id
    sanitize: true`,
    ),
    policy(
      'basic',
      'basic',
      `  basicAuth:
    users: { name: staff }
    forwardUsernameHeader: x-user`,
    ),
    policy(
      'jwt',
      'jwt',
      `  jwt:
    providers:
      - name: login
        issuer: ${ISS}
        audiences: [orders]
        remoteJWKS: { uri: "http://127.0.0.1:${jwksPort}/.well-known/jwks.json", cacheDuration: 10m }
        claimToHeaders: [{ header: x-user, claim: sub }]
  authorization:
    defaultAction: Deny
    rules:
      - name: readers
        action: Allow
        principal: { jwt: { provider: login, scopes: ["orders:read"] } }`,
    ),
    policy(
      'ip',
      'ip',
      `  authorization:
    defaultAction: Allow
    rules: [{ action: Deny, principal: { clientCIDRs: [127.0.0.0/8, "::1/128"] } }]`,
    ),
    policy(
      'broken',
      'broken',
      `  basicAuth:
    users: { name: no-such-secret }`,
    ),
  ].join('\n---\n')

const routes = ['keys', 'basic', 'jwt', 'ip', 'broken', 'open'].map((r) => route(r, `/${r}`, 'v1')).join('---\n')

beforeAll(async () => {
  key1 = await generateKeyPair('RS256', { extractable: true })
  key2 = await generateKeyPair('ES256', { extractable: true })
  served = { keys: [{ ...(await exportJWK(key1.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] }
  jwks = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: () => {
      jwksHits++
      return Response.json(served)
    },
  })
  echo = startEcho('v1')
  port = await freePort()
  cfg = new ConfigDir()
  cfg.write('base.yaml', baseManifests(port, { v1: echo.port }))
  cfg.write('routes.yaml', routes)
  cfg.write('secrets.yaml', secrets(API_KEY))
  cfg.write('policies.yaml', policies(jwks.port!))
  gw = await startGateway(cfg.dir)
  admin = `http://127.0.0.1:${gw.adminPort}`
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/open`)).status === 200, 5000, 'serving')
})

afterAll(async () => {
  await gw?.stop()
  await echo?.stop()
  jwks?.stop(true)
  cfg?.cleanup()
})

let n = 0
async function get(path: string, headers: Record<string, string> = {}) {
  const id = `req-${++n}`
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { ...headers, 'x-test-id': id } })
  const body = await res.text()
  return { status: res.status, headers: res.headers, body, upstream: echo.requests.find((r) => r.headers['x-test-id'] === id) }
}

const now = () => Math.floor(Date.now() / 1000)
async function token(opts: { key?: CryptoKey; kid?: string; alg?: string; iss?: string; aud?: string; exp?: number; scope?: string } = {}) {
  return new SignJWT({ sub: 'user-42', scope: opts.scope ?? 'orders:read' })
    .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? 'k1' })
    .setIssuer(opts.iss ?? ISS)
    .setAudience(opts.aud ?? 'orders')
    .setExpirationTime(opts.exp ?? now() + 300)
    .sign(opts.key ?? key1.privateKey)
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
const basicAuth = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` })

describe('apiKeyAuth', () => {
  test('no key or a wrong one: 401 naming the scheme; the right one reaches the backend as a client ID, without the key', async () => {
    const none = await get('/keys')
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('API-Key realm="portico"')
    expect(none.upstream).toBeUndefined()
    expect((await get('/keys', { 'x-api-key': 'guess' })).status).toBe(401)
    const ok = await get('/keys', { 'x-api-key': API_KEY, 'x-client-id': 'spoofed' })
    expect(ok.status).toBe(200)
    expect(ok.upstream!.headers['x-client-id']).toBe('mobile-app')
    expect(ok.upstream!.headers['x-api-key']).toBeUndefined()
  })
})

describe('basicAuth', () => {
  test('bcrypt (first check asynchronous, then cached) and {SHA} users; wrong passwords 401', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await get('/basic', basicAuth('alice', PASSWORD))
      expect(r.status).toBe(200)
      expect(r.upstream!.headers['x-user']).toBe('alice')
    }
    expect((await get('/basic', basicAuth('bob', SHA_PASSWORD))).upstream!.headers['x-user']).toBe('bob')
    const wrong = await get('/basic', basicAuth('alice', 'wrong'))
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="portico", charset="UTF-8"')
    expect(wrong.body).toBe('unauthorized\n')
    expect((await get('/basic', basicAuth('mallory', PASSWORD))).status).toBe(401)
    expect((await get('/basic')).status).toBe(401)
  })
})

describe('jwt with a remote JWKS, and authorization on its scopes', () => {
  test('good token: 200 with the claim header; every bad one 401', async () => {
    const good = await get('/jwt', bearer(await token()))
    expect(good.status).toBe(200)
    expect(good.upstream!.headers['x-user']).toBe('user-42')
    const t = await token()
    const [h, p, s] = t.split('.') as [string, string, string]
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' })).toString('base64url')
    const bad = {
      expired: await token({ exp: now() - 600 }),
      'wrong audience': await token({ aud: 'billing' }),
      'wrong issuer': await token({ iss: 'https://evil.test' }),
      tampered: `${h}.${forged}.${s}`,
      'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url')}.${p}.`,
      'unknown key': await token({ key: (await generateKeyPair('RS256')).privateKey, kid: 'k9' }),
    }
    for (const [name, tok] of Object.entries(bad)) {
      const r = await get('/jwt', bearer(tok))
      expect([name, r.status, r.headers.get('www-authenticate')]).toEqual([name, 401, 'Bearer realm="portico"'])
      expect(r.upstream).toBeUndefined()
    }
    expect((await get('/jwt')).status).toBe(401)
  })

  test('a valid token without the required scope: 403', async () => {
    expect((await get('/jwt', bearer(await token({ scope: 'orders:write' })))).status).toBe(403)
  })

  test('key rotation: a token signed with a new key is accepted once the JWKS publishes it; the retired key is refused', async () => {
    const old = await token()
    expect((await get('/jwt', bearer(old))).status).toBe(200)
    served = { keys: [{ ...(await exportJWK(key2.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' }] }
    // the unknown kid makes the gateway refetch (at most every 5 s: the 'unknown key' case above may just have)
    const fresh = await token({ key: key2.privateKey, kid: 'k2', alg: 'ES256' })
    await eventually(async () => (await get('/jwt', bearer(fresh))).status === 200, 12_000, 'new key accepted')
    expect((await get('/jwt', bearer(old))).status).toBe(401)
  }, 20_000)

  test('the JWKS server going away keeps the keys the gateway has', async () => {
    const fresh = await token({ key: key2.privateKey, kid: 'k2', alg: 'ES256' })
    const hits = jwksHits
    jwks.stop(true)
    expect((await get('/jwt', bearer(fresh))).status).toBe(200)
    expect((await get('/jwt', bearer(await token({ key: key2.privateKey, kid: 'k2', alg: 'ES256', scope: 'orders:read extra' })))).status).toBe(200)
    expect(jwksHits).toBe(hits)
  })
})

describe('IP rules', () => {
  test('a loopback client is denied: 403', async () => {
    const r = await get('/ip')
    expect(r.status).toBe(403)
    expect(r.upstream).toBeUndefined()
  })
})

describe('fail closed and status', () => {
  test('a policy naming a missing Secret: the route answers 500 and the status says why', async () => {
    const r = await get('/broken', basicAuth('alice', PASSWORD))
    expect(r.status).toBe(500)
    expect(r.upstream).toBeUndefined()
    const objs = (await (await fetch(`${admin}/resources`)).json()) as any[]
    const sp = objs.find((o) => o.kind === 'SecurityPolicy' && o.metadata.name === 'broken')
    expect(sp.status.ancestors[0].conditions[0]).toMatchObject({ type: 'Accepted', status: 'False', reason: 'Invalid', message: 'basicAuth.users: Secret default/no-such-secret not found' })
    const ok = objs.find((o) => o.kind === 'SecurityPolicy' && o.metadata.name === 'jwt')
    expect(ok.status.ancestors[0].conditions[0]).toMatchObject({ type: 'Accepted', status: 'True' })
    expect((await get('/open')).status).toBe(200)
  })

  test('/config, /resources and /problems show no credential, not even hashed', async () => {
    const needles = [
      API_KEY,
      Buffer.from(API_KEY).toString('base64'),
      createHash('sha256').update(API_KEY).digest('base64'),
      PASSWORD,
      BCRYPT,
      BCRYPT.slice(7),
      createHash('sha1').update(SHA_PASSWORD).digest('base64'),
    ]
    for (const path of ['/config', '/resources', '/problems']) {
      const text = await (await fetch(`${admin}${path}`)).text()
      for (const needle of needles) expect([path, text.includes(needle)]).toEqual([path, false])
    }
    const config = await (await fetch(`${admin}/config`)).text()
    expect(config).toContain('"credentials":"[redacted]"')
    expect(config).toContain('"htpasswd":"[redacted]"')
  })

  test('editing the Secret rotates the API key without a restart', async () => {
    cfg.write('secrets.yaml', secrets(NEW_API_KEY))
    await eventually(async () => (await get('/keys', { 'x-api-key': NEW_API_KEY })).status === 200, 5000, 'new key accepted')
    expect((await get('/keys', { 'x-api-key': API_KEY })).status).toBe(401)
    // the bcrypt cache survived the rebuild (same entry): still accepted
    expect((await get('/basic', basicAuth('alice', PASSWORD))).status).toBe(200)
  })

  test('deleting the Secret fails the route closed', async () => {
    cfg.write('secrets.yaml', secrets(NEW_API_KEY).split('---')[1]!)
    await eventually(async () => (await get('/keys', { 'x-api-key': NEW_API_KEY })).status === 500, 5000, 'route closed')
  })
})
