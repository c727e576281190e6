/**
 * extAuth end to end in file mode: a forward-auth service (a Service of its own) answering
 * 200 with headers, 401 with a challenge, 403, 302 to a login page, 500 and too slowly; failOpen
 * against a service that is down.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route, startGateway } from './support.ts'

let echo: EchoUpstream
let auth: Server<undefined>
let cfg: ConfigDir
let gw: Portico
let port: number
const checks: { method: string; path: string; headers: Record<string, string> }[] = []

const policy = (name: string, service: string, extra = '') => `apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${name} }]
  extAuth:
    http:
      backendRef: { name: ${service}, port: 80 }
      path: /check
      headersToBackend: [x-auth-user]
    headersToExtAuth: [cookie]
    timeout: 300ms
${extra}`

// the Gateway API's own way (GEP-1494): an ExternalAuth filter on the rule
const FILTER_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: filtered, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /filtered } }]
      filters:
        - type: ExternalAuth
          externalAuth:
            protocol: HTTP
            backendRef: { name: authsvc, port: 80 }
            http: { path: /check, allowedHeaders: [cookie], allowedResponseHeaders: [x-auth-user] }
      backendRefs: [{ name: v1, port: 80 }]
`

beforeAll(async () => {
  auth = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: async (req) => {
      const url = new URL(req.url)
      checks.push({ method: req.method, path: url.pathname + url.search, headers: Object.fromEntries(req.headers) })
      switch (req.headers.get('authorization')) {
        case 'Bearer allow':
          return new Response(null, { status: 200, headers: { 'x-auth-user': 'bob', 'x-auth-internal': 'not for the backend' } })
        case 'Bearer deny':
          return new Response('no entry\n', { status: 403 })
        case 'Bearer boom':
          return new Response('crash', { status: 500 })
        case 'Bearer slow':
          await Bun.sleep(1000)
          return new Response(null, { status: 200 })
        case 'Bearer browser':
          return new Response(null, { status: 302, headers: { location: 'https://login.example/?rd=x' } })
        default:
          return new Response('login required\n', { status: 401, headers: { 'www-authenticate': 'Bearer realm="auth"' } })
      }
    },
  })
  echo = startEcho('v1')
  port = await freePort()
  const dead = await freePort()
  cfg = new ConfigDir()
  cfg.write('base.yaml', baseManifests(port, { v1: echo.port, authsvc: auth.port!, down: dead }))
  cfg.write('routes.yaml', [...['ext', 'open'].map((r) => route(r, `/${r}`, 'v1')), FILTER_ROUTE].join('---\n'))
  cfg.write('policies.yaml', [policy('ext', 'authsvc'), policy('open', 'down', '  # failOpen\n').replace('    timeout: 300ms', '    timeout: 300ms\n    failOpen: true')].join('\n---\n'))
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/ext`)).status === 401, 5000, 'policy live')
})

afterAll(async () => {
  await gw?.stop()
  await echo?.stop()
  auth?.stop(true)
  cfg?.cleanup()
})

let n = 0
async function get(path: string, authorization?: string) {
  const id = `r${++n}`
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { 'x-test-id': id, cookie: 'sid=1', ...(authorization ? { authorization } : {}) }, redirect: 'manual' })
  return { status: res.status, headers: res.headers, body: await res.text(), upstream: echo.requests.find((r) => r.headers['x-test-id'] === id) }
}

test('200: the request goes on with the headers the service chose; the check saw method, path, Authorization and the listed headers', async () => {
  const r = await get('/ext/orders?id=7', 'Bearer allow')
  expect(r.status).toBe(200)
  expect(r.upstream!.headers['x-auth-user']).toBe('bob')
  expect(r.upstream!.headers['x-auth-internal']).toBeUndefined()
  const check = checks.at(-1)!
  expect(check.method).toBe('GET')
  expect(check.path).toBe('/check/ext/orders?id=7')
  expect(check.headers.authorization).toBe('Bearer allow')
  expect(check.headers.cookie).toBe('sid=1')
  expect(check.headers['x-forwarded-uri']).toBe('/ext/orders?id=7')
  expect(check.headers['x-test-id']).toBeUndefined()
})

test('401 and 403 and 302 from the service reach the client as they came; the backend sees nothing', async () => {
  const none = await get('/ext')
  expect(none.status).toBe(401)
  expect(none.headers.get('www-authenticate')).toBe('Bearer realm="auth"')
  expect(none.body).toBe('login required\n')
  expect(none.upstream).toBeUndefined()
  const deny = await get('/ext', 'Bearer deny')
  expect(deny.status).toBe(403)
  expect(deny.upstream).toBeUndefined()
  const login = await get('/ext', 'Bearer browser')
  expect(login.status).toBe(302)
  expect(login.headers.get('location')).toBe('https://login.example/?rd=x')
})

test('the service failing or too slow: 503, never the backend', async () => {
  for (const t of ['Bearer boom', 'Bearer slow']) {
    const r = await get('/ext', t)
    expect([t, r.status]).toEqual([t, 503])
    expect(r.upstream).toBeUndefined()
  }
})

test('failOpen: a service that is down lets requests through', async () => {
  const r = await get('/open')
  expect(r.status).toBe(200)
  expect(r.upstream).toBeDefined()
})

test('the Gateway API ExternalAuth filter (GEP-1494, HTTP) does the same on its rule', async () => {
  const ok = await get('/filtered/x', 'Bearer allow')
  expect(ok.status).toBe(200)
  expect(ok.upstream!.headers['x-auth-user']).toBe('bob')
  expect(checks.at(-1)!.path).toBe('/check/filtered/x')
  expect(checks.at(-1)!.headers.cookie).toBe('sid=1')
  expect((await get('/filtered/x')).status).toBe(401)
  expect((await get('/filtered/x', 'Bearer deny')).status).toBe(403)
})
