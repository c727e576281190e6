import { expect, test } from 'bun:test'
import { createAdmin, createProbeAdmin, type AdminDeps } from '../../src/admin/index.ts'
import { bearerToken, isBindAddress, isLoopbackAddress, tokenFromSecret, tokenMatches } from '../../src/admin/auth.ts'
import type { K8sObject } from '../../src/store/kinds.ts'

const route: K8sObject = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'default', generation: 3 }, spec: {} }
const gw: K8sObject = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'g', namespace: 'default', generation: 1 }, spec: {} }

function deps(over: Partial<AdminDeps> = {}): AdminDeps {
  return {
    ready: () => true,
    objects: () => [route, gw],
    statusOf: (key) => (key === 'HTTPRoute/default/r' ? { parents: [{ parentRef: { name: 'g' }, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted' }] }] } : undefined),
    problems: () => [],
    snapshot: () => ({ revision: 7, http: [], l4: [], pools: {} }),
    rejected: () => [],
    metrics: () => 'portico_up 1\n',
    ...over,
  }
}
// a host name of some length: Elysia finds the path by searching for "/" from offset 11
const get = (app: { handle(r: Request): Promise<Response> }, path: string, headers: Record<string, string> = {}) => app.handle(new Request(`http://127.0.0.1:9901${path}`, { headers }))

test('readyz is 503 until the first snapshot is live', async () => {
  let ready = false
  const app = createAdmin(deps({ ready: () => ready }))
  expect((await get(app, '/readyz')).status).toBe(503)
  ready = true
  expect((await get(app, '/readyz')).status).toBe(200)
  expect((await get(app, '/healthz')).status).toBe(200)
})

test('resources lists every object with its computed status, sorted', async () => {
  const body = (await (await get(createAdmin(deps()), '/resources')).json()) as K8sObject[]
  expect(body.map((o) => o.kind)).toEqual(['Gateway', 'HTTPRoute'])
  expect(body[0]!.status).toBeUndefined()
  expect(body[1]!.status.parents[0].conditions[0].reason).toBe('Accepted')
})

test('a load problem shows as Accepted=False/Invalid on the object, parents included', async () => {
  const app = createAdmin(deps({ problems: () => [{ origin: 'routes/r.yaml', line: 4, objectKey: 'HTTPRoute/default/r', message: 'spec.rules must be a list' }] }))
  const body = (await (await get(app, '/resources')).json()) as K8sObject[]
  const r = body.find((o) => o.kind === 'HTTPRoute')!
  expect(r.status.conditions[0]).toMatchObject({ type: 'Accepted', status: 'False', reason: 'Invalid', observedGeneration: 3 })
  expect(r.status.conditions[0].message).toContain('routes/r.yaml:4')
  expect(r.status.parents[0].conditions).toHaveLength(1)
  expect(r.status.parents[0].conditions[0].reason).toBe('Invalid')
  const problems = (await (await get(app, '/problems')).json()) as { load: unknown[] }
  expect(problems.load).toHaveLength(1)
})

test('config serves the live IR, metrics the text exposition', async () => {
  const app = createAdmin(deps())
  expect(((await (await get(app, '/config')).json()) as { revision: number }).revision).toBe(7)
  const m = await get(app, '/metrics')
  expect(m.headers.get('content-type')).toContain('text/plain')
  expect(await m.text()).toBe('portico_up 1\n')
  const none = createAdmin(deps({ snapshot: () => undefined }))
  expect((await get(none, '/config')).status).toBe(503)
})

const CONFIG_VIEWS = ['/resources', '/config', '/problems']
const PROBES = ['/healthz', '/readyz', '/metrics']

test('with a token, every config view needs it (401 + WWW-Authenticate otherwise); probes and metrics do not', async () => {
  const app = createAdmin(deps({ auth: { token: () => 's3cret-token', source: 'file' } }))
  for (const path of CONFIG_VIEWS) {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic czNjcmV0LXRva2Vu' }, { authorization: 'Bearer s3cret-token-and-more' }] as Record<string, string>[]) {
      const r = await get(app, path, headers)
      expect(r.status).toBe(401)
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="portico-admin"')
    }
    expect((await get(app, `${path}?x=1`)).status).toBe(401)
    expect((await get(app, path, { authorization: 'Bearer s3cret-token' })).status).toBe(200)
    expect((await get(app, path, { authorization: 'bearer s3cret-token' })).status).toBe(200)
  }
  for (const path of PROBES) expect((await get(app, path)).status).toBe(200)
})

test('a token that is not available yet (Secret not loaded) closes the config views with 503', async () => {
  let token: string | undefined
  const app = createAdmin(deps({ auth: { token: () => token, source: 'Secret portico-system/admin-token' } }))
  const r = await get(app, '/resources', { authorization: 'Bearer anything' })
  expect(r.status).toBe(503)
  expect(((await r.json()) as { error: string }).error).toContain('Secret portico-system/admin-token')
  expect((await get(app, '/healthz')).status).toBe(200)
  token = 'now-here'
  expect((await get(app, '/config', { authorization: 'Bearer now-here' })).status).toBe(200)
})

test('the probe app serves probes and metrics only', async () => {
  const app = createProbeAdmin(deps())
  for (const path of PROBES) expect((await get(app, path)).status).toBe(200)
  for (const path of [...CONFIG_VIEWS, '/', '/nope', '/resources?format=yaml']) expect((await get(app, path)).status).toBe(404)
})

test('loopback and bind-address checks', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost']) expect(isLoopbackAddress(a)).toBe(true)
  for (const a of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', '::ffff:10.0.0.1', 'example.com', '']) expect(isLoopbackAddress(a)).toBe(false)
  for (const a of ['0.0.0.0', '::', '127.0.0.1', 'fe80::1', 'localhost']) expect(isBindAddress(a)).toBe(true)
  for (const a of ['example.com', '1.2.3', '[::1]', '127.0.0.1:80', '', ' 127.0.0.1']) expect(isBindAddress(a)).toBe(false)
})

test('token helpers: bearer parsing, constant-time match, Secret token', () => {
  expect(bearerToken('Bearer abc')).toBe('abc')
  expect(bearerToken('bearer  abc ')).toBe('abc')
  expect(bearerToken('Bearer')).toBeUndefined()
  expect(bearerToken('Basic abc')).toBeUndefined()
  expect(bearerToken(null)).toBeUndefined()
  expect(tokenMatches('abc', 'abc')).toBe(true)
  expect(tokenMatches('abc', 'abd')).toBe(false)
  expect(tokenMatches('abc', 'abcd')).toBe(false)
  expect(tokenMatches('', 'abc')).toBe(false)
  const secret = (data: Record<string, string>): K8sObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 't', namespace: 'n' }, data })
  expect(tokenFromSecret(secret({ token: Buffer.from('tok-1\n').toString('base64') }))).toBe('tok-1')
  expect(tokenFromSecret(secret({ other: 'eA==' }))).toBeUndefined()
  expect(tokenFromSecret(secret({ token: '' }))).toBeUndefined()
  expect(tokenFromSecret(undefined)).toBeUndefined()
})
