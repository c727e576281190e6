/**
 * Kong's plugins end to end, through real sockets: Portico in file mode reading Kong-style
 * manifests (KongPlugin, KongClusterPlugin, KongConsumer, credential Secrets), an echo upstream
 * recording what arrives. Statuses, bodies and headers are Kong's.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'
import { generateKeyPairSync } from 'node:crypto'
import { SignJWT } from 'jose'
import { consumer, consumers, credential, gateway, JWT_SECRETS, KEYS, kongRoute, PASSWORDS, plugin } from './manifests.ts'

const RSA = generateKeyPairSync('rsa', { modulusLength: 2048 })
const RSA_PUBLIC_PEM = RSA.publicKey.export({ type: 'spki', format: 'pem' }).toString()

// go-kong FillID("alex") for consumers: uuid5(uuid5(fd02801f-0957-4a15-a55a-c8d9606f30b5, "consumers"), "alex")
const ALEX_ID = '7fb03465-9587-5b74-af07-260b30881b27'

const plugins = [
  plugin('key-auth', 'key-auth', '  hide_credentials: true\n'),
  plugin('rate-limit-3', 'rate-limiting', '  minute: 3\n  policy: local\n'),
  plugin('rate-limit-gold', 'rate-limiting', '  minute: 100\n  policy: local\n'),
  plugin('cors', 'cors', '  origins: ["https://app.example.com"]\n  credentials: true\n  max_age: 600\n'),
  plugin('admins-only', 'acl', '  allow: [admins]\n'),
  plugin('basic-auth', 'basic-auth', ''),
  plugin('transform', 'request-transformer', `  remove:
    headers: [x-internal]
    querystring: [debug]
  rename:
    headers: ["x-old:x-new"]
  replace:
    headers: ["x-version:2"]
  add:
    headers: ["x-added:yes", "x-version:never"]
    querystring: ["source:kong"]
  append:
    headers: ["x-multi:b"]
`),
  plugin('add-response-header', 'response-transformer', '  add:\n    headers: ["demo: injected-by-kong"]\n  remove:\n    headers: [x-powered-by]\n'),
  plugin('deny-loopback', 'ip-restriction', '  deny: [127.0.0.0/8, "::1/128"]\n'),
  plugin('one-kb', 'request-size-limiting', '  allowed_payload_size: 1\n  size_unit: kilobytes\n'),
  plugin('jwt', 'jwt', '  claims_to_verify: [exp]\n'),
  plugin('oauth', 'oauth2', '  scopes: [email]\n'),
  plugin('global-correlation-id', 'correlation-id', '  header_name: X-Correlation-ID\n  echo_downstream: true\n', 'KongClusterPlugin', '  labels:\n    global: "true"\n'),
].join('---\n')

const routes = [
  kongRoute('keys', 'key-auth, rate-limit-3, cors'),
  kongRoute('acl', 'key-auth,admins-only'),
  kongRoute('basic', 'basic-auth'),
  kongRoute('transform', 'transform'),
  kongRoute('ip', 'deny-loopback'),
  kongRoute('size', 'one-kb'),
  kongRoute('unknown', 'oauth'),
  kongRoute('tokens', 'jwt'),
  kongRoute('missing', 'no-such-plugin'),
  kongRoute('open', ''),
  kongRoute('secure', '', '', { 'konghq.com/protocols': 'https' }),
  kongRoute('moved', '', '', { 'konghq.com/protocols': 'https', 'konghq.com/https-redirect-status-code': '301' }),
  kongRoute('tenants', '', '', { 'konghq.com/methods': 'GET,HEAD', 'konghq.com/headers.x-tenant': 'acme,globex' }),
  kongRoute('rehost', '', '', { 'konghq.com/preserve-host': 'false' }),
  kongRoute('svc', '', '', {}, 'echo-api'),
].join('---\n')

let echo: EchoUpstream
let cfg: ConfigDir
let gw: Portico
let port: number

beforeAll(async () => {
  echo = startEcho('echo')
  port = await freePort()
  cfg = new ConfigDir()
  cfg.write('gateway.yaml', gateway(port, echo.port))
  cfg.write('plugins.yaml', plugins)
  cfg.write('consumers.yaml', consumers())
  // an RS256 credential: the PEM indented under stringData
  cfg.write('rsa-consumer.yaml', [`apiVersion: v1
kind: Secret
metadata:
  name: robot-jwt
  namespace: default
  labels:
    konghq.com/credential: jwt
stringData:
  key: robot-issuer
  algorithm: RS256
  rsa_public_key: |
${RSA_PUBLIC_PEM.trim().split('\n').map((l) => `    ${l}`).join('\n')}
`, consumer('robot', 'robot', ['robot-jwt'])].join('---\n'))
  cfg.write('routes.yaml', routes)
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/open`)).status === 200, 5000, 'serving')
})

afterAll(async () => {
  await gw?.stop()
  await echo?.stop()
  cfg?.cleanup()
})

let n = 0
async function call(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const id = `req-${++n}`
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: init.method ?? 'GET', headers: { ...init.headers, 'x-test-id': id }, ...(init.body !== undefined ? { body: init.body } : {}) })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, text, json, upstream: echo.requests.find((r) => r.headers['x-test-id'] === id) }
}

describe('key-auth with KongConsumers', () => {
  test('no key: 401 with Kong\'s body and challenge; a wrong key: 401 "Invalid authentication credentials"', async () => {
    const none = await call('/keys')
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Key realm="kong"')
    expect(none.headers.get('content-type')).toContain('application/json')
    expect(none.json.message).toBe('No API key found in request')
    expect(typeof none.json.request_id).toBe('string')
    expect(none.upstream).toBeUndefined()
    const wrong = await call('/keys', { headers: { apikey: 'guess' } })
    expect(wrong.status).toBe(401)
    expect(wrong.json.message).toBe('Invalid authentication credentials')
  })

  test('a consumer\'s key (header or query): its X-Consumer-* headers upstream, spoofed ones replaced or cleared, the key hidden', async () => {
    const ok = await call('/keys/x', { headers: { apikey: KEYS.alex, 'x-consumer-id': 'spoofed', 'x-anonymous-consumer': 'true' } })
    expect(ok.status).toBe(200)
    const h = ok.upstream!.headers
    expect(h['x-consumer-id']).toBe(ALEX_ID)
    expect(h['x-consumer-username']).toBe('alex')
    expect(h['x-consumer-custom-id']).toBe('alex-1')
    expect(h['x-credential-identifier']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(h['x-anonymous-consumer']).toBeUndefined()
    expect(h.apikey).toBeUndefined() // hide_credentials
    expect(ok.upstream!.path).toBe('/x') // strip-path
    const sam = await call('/keys?apikey=' + KEYS.sam, { headers: { 'x-consumer-custom-id': 'forged' } })
    expect(sam.status).toBe(200)
    expect(sam.upstream!.headers['x-consumer-username']).toBe('sam')
    expect(sam.upstream!.headers['x-consumer-custom-id']).toBeUndefined()
  })
})

describe('rate-limiting (local) by consumer, with a consumer\'s own limit', () => {
  test('Kong\'s headers on every answer; the 4th request in a minute is 429 with Retry-After; alex has his gold limit', async () => {
    // a fresh minute window could split the burst: wait if we are within 2 s of its end
    const s = new Date().getSeconds()
    if (s >= 58) await Bun.sleep((61 - s) * 1000)
    const seen: { status: number; remaining: string | null }[] = []
    for (let i = 0; i < 4; i++) {
      const r = await call('/keys', { headers: { apikey: KEYS.sam } })
      seen.push({ status: r.status, remaining: r.headers.get('x-ratelimit-remaining-minute') })
      expect(r.headers.get('x-ratelimit-limit-minute')).toBe('3')
      expect(r.headers.get('ratelimit-limit')).toBe('3')
      if (r.status === 429) {
        expect(r.json.message).toBe('API rate limit exceeded')
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
        expect(r.upstream).toBeUndefined()
      }
    }
    // sam already used one request in the test above: 2 left, then 1, then 0, then limited
    expect(seen.map((x) => x.status)).toEqual([200, 200, 429, 429])
    expect(seen.map((x) => x.remaining)).toEqual(['1', '0', '0', '0'])
    const alex = await call('/keys', { headers: { apikey: KEYS.alex } })
    expect(alex.status).toBe(200)
    expect(alex.headers.get('x-ratelimit-limit-minute')).toBe('100')
  })
})

describe('cors on an authenticated route', () => {
  test('a preflight is answered before key-auth runs; the actual request gets the CORS headers', async () => {
    const pre = await call('/keys', { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'apikey, content-type' } })
    expect(pre.status).toBe(200)
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(pre.headers.get('access-control-allow-credentials')).toBe('true')
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT')
    expect(pre.headers.get('access-control-allow-headers')).toBe('apikey, content-type')
    expect(pre.headers.get('access-control-max-age')).toBe('600')
    expect(pre.upstream).toBeUndefined()
    const denied = await call('/keys', { method: 'OPTIONS', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' } })
    expect(denied.headers.get('access-control-allow-origin')).toBeNull()
    const actual = await call('/keys', { headers: { origin: 'https://app.example.com', apikey: KEYS.alex } })
    expect(actual.status).toBe(200)
    expect(actual.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(actual.headers.get('vary')).toContain('Origin')
    // an unauthenticated actual request is still refused
    expect((await call('/keys', { headers: { origin: 'https://app.example.com' } })).status).toBe(401)
  })
})

describe('acl', () => {
  test('admins pass with X-Consumer-Groups; another group is 403 "You cannot consume this service"', async () => {
    const ok = await call('/acl', { headers: { apikey: KEYS.alex, 'x-consumer-groups': 'forged' } })
    expect(ok.status).toBe(200)
    expect(ok.upstream!.headers['x-consumer-groups']).toBe('admins')
    const no = await call('/acl', { headers: { apikey: KEYS.sam } })
    expect(no.status).toBe(403)
    expect(no.json.message).toBe('You cannot consume this service')
    expect(no.upstream).toBeUndefined()
  })
})

describe('basic-auth with a KongConsumer credential', () => {
  test('the right password: the consumer upstream; wrong or none: 401 with Kong\'s challenge', async () => {
    const auth = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` })
    const ok = await call('/basic', { headers: auth('alice', PASSWORDS.alice) })
    expect(ok.status).toBe(200)
    expect(ok.upstream!.headers['x-consumer-username']).toBe('alice')
    const wrong = await call('/basic', { headers: auth('alice', 'nope') })
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="service"')
    expect(wrong.json.message).toBe('Unauthorized')
    expect((await call('/basic')).status).toBe(401)
  })
})

describe('request-transformer and response-transformer', () => {
  test('remove → rename → replace → add → append on headers and query; the Service\'s response-transformer on every route using it', async () => {
    const r = await call('/transform/p?debug=1&keep=2', { headers: { 'x-internal': 'secret', 'x-old': 'v', 'x-version': '1', 'x-multi': 'a' } })
    expect(r.status).toBe(200)
    const h = r.upstream!.headers
    expect(h['x-internal']).toBeUndefined()
    expect(h['x-old']).toBeUndefined()
    expect(h['x-new']).toBe('v')
    expect(h['x-version']).toBe('2') // replaced; add does not touch a present header
    expect(h['x-added']).toBe('yes')
    expect(h['x-multi']).toBe('a, b')
    expect(r.upstream!.path).toBe('/p?keep=2&source=kong')
    expect(r.headers.get('demo')).toBe('injected-by-kong')
    expect((await call('/open')).headers.get('demo')).toBe('injected-by-kong')
  })
})

describe('ip-restriction, request-size-limiting, correlation-id (global)', () => {
  test('a denied client address: 403 with Kong\'s message', async () => {
    const r = await call('/ip')
    expect(r.status).toBe(403)
    expect(r.json.message).toBe('IP address not allowed')
  })

  test('a body over 1 KiB: 413 "Request size limit exceeded"; a small one passes', async () => {
    const big = await call('/size', { method: 'POST', body: 'x'.repeat(2048) })
    expect(big.status).toBe(413)
    expect(big.json.message).toBe('Request size limit exceeded')
    expect(big.upstream).toBeUndefined()
    const small = await call('/size', { method: 'POST', body: 'x'.repeat(100) })
    expect(small.status).toBe(200)
  })

  test('a global KongClusterPlugin: every route gets X-Correlation-ID upstream and back; a client\'s own is kept', async () => {
    const r = await call('/open')
    const id = r.upstream!.headers['x-correlation-id']
    expect(id).toMatch(/^[0-9a-f-]{36}#\d+$/)
    expect(r.headers.get('x-correlation-id')).toBe(id!)
    const mine = await call('/open', { headers: { 'x-correlation-id': 'mine-1' } })
    expect(mine.upstream!.headers['x-correlation-id']).toBe('mine-1')
  })
})

describe('fail closed', () => {
  test('a plugin Portico does not support, or a missing KongPlugin: 500 and Accepted=False naming it; other routes unaffected', async () => {
    const r = await call('/unknown', { headers: { authorization: 'Bearer x' } })
    expect(r.status).toBe(500)
    expect(r.upstream).toBeUndefined()
    expect((await call('/missing')).status).toBe(500)
    const resources = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/resources`)).json()) as any[]
    const cond = (name: string) => resources.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === name).status.parents[0].conditions.find((c: any) => c.type === 'Accepted')
    expect(cond('unknown')).toMatchObject({ status: 'False' })
    expect(cond('unknown').message).toContain('plugin oauth2 is not supported')
    expect(cond('unknown').message).toContain('KongPlugin default/oauth')
    expect(cond('missing').message).toContain('KongPlugin default/no-such-plugin not found')
    expect(cond('keys')).toMatchObject({ status: 'True' })
    const alex = resources.find((o) => o.kind === 'KongConsumer' && o.metadata.name === 'alex')
    expect(alex.status.conditions[0]).toMatchObject({ type: 'Programmed', status: 'True' })
  })
})

describe('konghq.com annotations', () => {
  test('protocols https: 426 "Please use HTTPS protocol", or the redirect status asked for', async () => {
    const r = await call('/secure')
    expect(r.status).toBe(426)
    expect(r.json.message).toBe('Please use HTTPS protocol')
    expect(r.upstream).toBeUndefined()
    const moved = await fetch(`http://127.0.0.1:${port}/moved/a?b=1`, { redirect: 'manual' })
    expect(moved.status).toBe(301)
    expect(moved.headers.get('location')).toBe('https://127.0.0.1/moved/a?b=1')
  })

  test('methods and headers.*: other methods and header values find no route (404)', async () => {
    expect((await call('/tenants', { headers: { 'x-tenant': 'acme' } })).status).toBe(200)
    expect((await call('/tenants', { headers: { 'x-tenant': 'globex' } })).status).toBe(200)
    expect((await call('/tenants', { headers: { 'x-tenant': 'initech' } })).status).toBe(404)
    expect((await call('/tenants')).status).toBe(404)
    expect((await call('/tenants', { method: 'POST', headers: { 'x-tenant': 'acme' }, body: '{}' })).status).toBe(404)
  })

  test('preserve-host false; a Service\'s host-header and path; an annotation Portico does not read is named in Accepted', async () => {
    const r = await call('/rehost/x')
    expect(r.upstream!.headers.host).toBe('echo.default.80.svc')
    expect((await call('/open')).upstream!.headers.host).toBe(`127.0.0.1:${port}`)
    const s = await call('/svc/items?x=1')
    expect(s.upstream!.headers.host).toBe('api.internal')
    expect(s.upstream!.path).toBe('/v2/items?x=1')
    const resources = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/resources`)).json()) as any[]
    const accepted = resources.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === 'svc').status.parents[0].conditions.find((c: any) => c.type === 'Accepted')
    expect(accepted.status).toBe('True')
    expect(accepted.message).toContain('konghq.com/connect-timeout (Service echo-api)')
  })
})

describe('jwt with consumer credentials', () => {
  const hs = (claims: Record<string, unknown>, secret = JWT_SECRETS.sam) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret))
  const inMinutes = (m: number) => Math.floor(Date.now() / 1000) + m * 60

  test("a token signed with the consumer's secret (header or ?jwt=): its consumer upstream; Kong's refusals otherwise", async () => {
    const good = await hs({ iss: 'sam-issuer', exp: inMinutes(5) })
    for (let i = 0; i < 2; i++) {
      // the second time from the verified-token cache
      const ok = await call('/tokens', { headers: { authorization: `Bearer ${good}` } })
      expect(ok.status).toBe(200)
      expect(ok.upstream!.headers['x-consumer-username']).toBe('sam')
    }
    expect((await call(`/tokens?jwt=${good}`)).status).toBe(200)
    const none = await call('/tokens')
    expect(none.status).toBe(401)
    expect(none.json.message).toBe('Unauthorized')
    const cases: [string, string][] = [
      [await hs({ iss: 'sam-issuer', exp: inMinutes(5) }, 'not-the-secret-not-the-secret-xx'), 'Invalid signature'],
      [await hs({ iss: 'who', exp: inMinutes(5) }), "No credentials found for given 'iss'"],
      [await hs({ exp: inMinutes(5) }), "No mandatory 'iss' in claims"],
      [await hs({ iss: 'robot-issuer', exp: inMinutes(5) }), 'Invalid algorithm'],
    ]
    for (const [token, message] of cases) {
      const r = await call('/tokens', { headers: { authorization: `Bearer ${token}` } })
      expect(r.status).toBe(401)
      expect(r.json.message).toBe(message)
      expect(r.upstream).toBeUndefined()
    }
    const expired = await call('/tokens', { headers: { authorization: `Bearer ${await hs({ iss: 'sam-issuer', exp: inMinutes(-5) })}` } })
    expect(expired.status).toBe(401)
    expect(expired.json).toEqual({ exp: 'token expired' })
  })

  test('an RS256 credential (rsa_public_key)', async () => {
    const { createPrivateKey } = await import('node:crypto')
    const token = await new SignJWT({ iss: 'robot-issuer', exp: Math.floor(Date.now() / 1000) + 300 }).setProtectedHeader({ alg: 'RS256' }).sign(createPrivateKey(RSA.privateKey.export({ type: 'pkcs8', format: 'pem' })))
    const ok = await call('/tokens', { headers: { authorization: `Bearer ${token}` } })
    expect(ok.status).toBe(200)
    expect(ok.upstream!.headers['x-consumer-username']).toBe('robot')
  })
})
