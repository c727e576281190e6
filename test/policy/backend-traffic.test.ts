/**
 * BackendTrafficPolicy loadBalancer / healthCheck / circuitBreaker / retry end to end in file
 * mode: the policy in the config folder, its status, the pool variant it makes (and that routes
 * without it keep the shared pool), behaviour over real sockets, /endpoints and /metrics.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'
import type { Portico } from '../../src/app.ts'
import { backendFeatures } from '../../src/policy/backend-traffic/backend.ts'

class Backend {
  server: Server<undefined> | undefined
  healthStatus = 200
  hits = 0
  constructor(
    readonly name: string,
    public port = 0,
  ) {}
  start(): this {
    this.server = Bun.serve({
      port: this.port,
      hostname: '127.0.0.1',
      fetch: async (req) => {
        const url = new URL(req.url)
        if (url.pathname === '/healthz') return new Response('h', { status: this.healthStatus })
        this.hits++
        const delay = Number(url.searchParams.get('delay') ?? 0)
        if (delay) await Bun.sleep(delay)
        return new Response(this.name)
      },
    })
    this.port = this.server.port!
    return this
  }
}

const a = new Backend('a').start()
const b = new Backend('b').start()
const cfg = new ConfigDir()
let gw: Portico
let port = 0

function manifests(): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: portico
  listeners: [{ name: http, protocol: HTTP, port: ${port} }]
---
apiVersion: v1
kind: Service
metadata: { name: app, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: app-a, namespace: default, labels: { kubernetes.io/service-name: app } }
addressType: IPv4
ports: [{ name: http, port: ${a.port} }]
endpoints: [{ addresses: [127.0.0.1] }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: app-b, namespace: default, labels: { kubernetes.io/service-name: app } }
addressType: IPv4
ports: [{ name: http, port: ${b.port} }]
endpoints: [{ addresses: [127.0.0.1] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: plain, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /plain } }], backendRefs: [{ name: app, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: guarded, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /guarded } }], backendRefs: [{ name: app, port: 80 }] }]
---
apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: guarded, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: guarded }]
  loadBalancer:
    type: ConsistentHash
    consistentHash: { type: Header, header: { name: x-user } }
  healthCheck:
    active:
      type: HTTP
      interval: 100ms
      timeout: 200ms
      unhealthyThreshold: 2
      healthyThreshold: 1
      http: { path: /healthz, expectedStatuses: [200] }
    passive:
      consecutive5XxErrors: 3
  circuitBreaker:
    maxParallelRequests: 2
  retry:
    numRetries: 1
    retryOn: { triggers: [gateway-error] }
    retryConstraint:
      budget: { percent: 20, interval: 10s }
      minRetryRate: { count: 5, interval: 1s }
`
}

beforeAll(async () => {
  port = await freePort()
  cfg.write('m.yaml', manifests())
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/plain`).then((r) => r.status, () => 0)) === 200, 5000, 'serving')
})

afterAll(async () => {
  await gw.stop()
  await a.server?.stop(true)
  await b.server?.stop(true)
  cfg.cleanup()
})

test('the policy is accepted', async () => {
  const status = await eventually(async () => {
    const res = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/resources`)).json()) as { kind: string; metadata: { name: string }; status?: any }[]
    return res.find((o) => o.kind === 'BackendTrafficPolicy')?.status
  })
  const accepted = status.ancestors[0].conditions.find((c: { type: string }) => c.type === 'Accepted')
  expect(accepted.status).toBe('True')
})

test('the guarded route hashes on x-user; the plain route still round-robins', async () => {
  const plain = new Set<string>()
  for (let i = 0; i < 10; i++) plain.add(await (await fetch(`http://127.0.0.1:${port}/plain`)).text())
  expect(plain).toEqual(new Set(['a', 'b']))
  const byUser = new Set<string>()
  for (let u = 0; u < 20; u++) {
    const seen = new Set<string>()
    for (let i = 0; i < 3; i++) seen.add(await (await fetch(`http://127.0.0.1:${port}/guarded`, { headers: { 'x-user': `u${u}` } })).text())
    expect(seen.size).toBe(1)
    byUser.add([...seen][0]!)
  }
  expect(byUser).toEqual(new Set(['a', 'b']))
})

test('circuitBreaker: beyond 2 parallel requests → 503 x-portico-overload; the plain route is not limited', async () => {
  const guarded = await Promise.all(Array.from({ length: 5 }, (_, i) => fetch(`http://127.0.0.1:${port}/guarded?delay=300`, { headers: { 'x-user': `c${i}` } })))
  const statuses = guarded.map((r) => r.status)
  expect(statuses.filter((s) => s === 503).length).toBe(3)
  expect(guarded.find((r) => r.status === 503)!.headers.get('x-portico-overload')).toBe('circuit-open maxParallelRequests')
  const plain = await Promise.all(Array.from({ length: 5 }, () => fetch(`http://127.0.0.1:${port}/plain?delay=100`)))
  expect(plain.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
})

test('active health: a failing /healthz takes the endpoint out of the guarded route only; /endpoints and /metrics show it', async () => {
  a.healthStatus = 503
  await eventually(async () => {
    const pools = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/endpoints`)).json()) as { pool: string; endpoints: { endpoint: string; healthy: boolean }[] }[]
    const variant = pools.find((p) => p.pool.startsWith('default/app:80#'))
    return variant?.endpoints.find((e) => e.endpoint.endsWith(`:${a.port}`))?.healthy === false
  }, 3000, 'a unhealthy in /endpoints')
  const names = new Set<string>()
  for (let u = 0; u < 20; u++) names.add(await (await fetch(`http://127.0.0.1:${port}/guarded`, { headers: { 'x-user': `h${u}` } })).text())
  expect(names).toEqual(new Set(['b']))
  const plain = new Set<string>()
  for (let i = 0; i < 10; i++) plain.add(await (await fetch(`http://127.0.0.1:${port}/plain`)).text())
  expect(plain).toEqual(new Set(['a', 'b']))
  const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
  expect(metrics).toContain(`portico_endpoint_healthy{endpoint="127.0.0.1:${a.port}",pool="default/app:80"} 1`)
  expect(metrics).toMatch(new RegExp(`portico_endpoint_healthy\\{endpoint="127.0.0.1:${a.port}",pool="default/app:80#[0-9a-z]+"\\} 0`))
  a.healthStatus = 200
  await eventually(async () => {
    const seen = new Set<string>()
    for (let u = 0; u < 20; u++) seen.add(await (await fetch(`http://127.0.0.1:${port}/guarded`, { headers: { 'x-user': `h${u}` } })).text())
    return seen.size === 2
  }, 3000, 'a back in the guarded route')
})

test('translation: defaults filled in, invalid combinations rejected with Envoy Gateway wording', () => {
  const features = backendFeatures({ healthCheck: { passive: {} }, circuitBreaker: {}, retry: {} }) as { name: string; spec: any }[]
  expect(features.find((f) => f.name === 'healthCheck')!.spec.passive).toEqual({
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 0,
    consecutiveLocalOriginFailures: 5,
    intervalMs: 3000,
    baseEjectionTimeMs: 30000,
    maxEjectionPercent: 10,
  })
  expect(features.find((f) => f.name === 'circuitBreaker')!.spec).toEqual({ maxConnections: 1024, maxPendingRequests: 1024, maxParallelRequests: 1024, maxParallelRetries: 1024 })
  expect(features.find((f) => f.name === 'retry')!.spec.retry).toMatchObject({ attempts: 2, codes: [503], backoffMs: 25, maxBackoffMs: 250, triggers: ['connect-failure', 'refused-stream', 'retriable-status-codes'] })
  expect(backendFeatures({ loadBalancer: { type: 'ConsistentHash' } })).toContain('consistentHash field needs to be set')
  expect(backendFeatures({ loadBalancer: { type: 'ConsistentHash', consistentHash: { type: 'SourceIP', tableSize: 65536 } } })).toContain('must be a prime number')
  expect(backendFeatures({ healthCheck: { active: { type: 'HTTP' } } })).toContain('http field needs to be set')
  expect(backendFeatures({ retry: { retryOn: { triggers: ['unavailable'] } } })).toContain('not supported yet')
})
