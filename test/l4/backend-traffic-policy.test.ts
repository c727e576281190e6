/**
 * BackendTrafficPolicy on TCPRoutes end to end in file mode, over real sockets: the policy in the
 * config folder, its status, and its effect on the L4 data plane through pool variants. Three
 * listeners share one Service of three endpoints:
 *  - `rr`:      RoundRobin and an active TCP health check (route level): every endpoint serves
 *               until one dies, then the prober ejects it and no connection goes to it, even
 *               once something listens on its port again (healthyThreshold keeps it out);
 *  - `hashed`:  ConsistentHash SourceIP (route level): one client address, one endpoint;
 *  - `limited`: circuitBreaker maxConnections 1 on rule `only` (rule level, over a Gateway-wide
 *               maxConnections that is reported Overridden).
 * A retry on a TCPRoute is Invalid (retries act on HTTP requests only).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createServer, type Socket } from 'node:net'
import { ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'
import type { Portico } from '../../src/app.ts'
import { greeting, startTcpEcho, TcpClient, type Backend } from './support/servers.ts'

let alpha: Backend
let beta: Backend
let gamma: Backend
const cfg = new ConfigDir()
let gw: Portico
const ports = { rr: 0, hashed: 0, limited: 0 }

function manifests(): string {
  const slice = (name: string, port: number) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: echo-${name}, namespace: default, labels: { kubernetes.io/service-name: echo } }
addressType: IPv4
ports: [{ name: tcp, port: ${port}, protocol: TCP }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
`
  const route = (name: string, rule = '') => `---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: ${name} }]
  rules: [{ ${rule ? `name: ${rule}, ` : ''}backendRefs: [{ name: echo, port: 3000 }] }]
`
  const policy = (name: string, target: string, body: string) => `---
apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [${target}]
${body}`
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
  listeners:
    - { name: rr, protocol: TCP, port: ${ports.rr} }
    - { name: hashed, protocol: TCP, port: ${ports.hashed} }
    - { name: limited, protocol: TCP, port: ${ports.limited} }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec: { ports: [{ name: tcp, port: 3000 }] }
${slice('alpha', alpha.port)}${slice('beta', beta.port)}${slice('gamma', gamma.port)}${route('rr')}${route('hashed')}${route('limited', 'only')}${route('retried')}${policy(
    'gateway-wide',
    '{ group: gateway.networking.k8s.io, kind: Gateway, name: gw }',
    '  circuitBreaker: { maxConnections: 1000 }\n',
  )}${policy(
    'rr',
    '{ group: gateway.networking.k8s.io, kind: TCPRoute, name: rr }',
    `  loadBalancer: { type: RoundRobin }
  healthCheck:
    active: { type: TCP, interval: 100ms, timeout: 200ms, unhealthyThreshold: 1, healthyThreshold: 1000 }
`,
  )}${policy(
    'hashed',
    '{ group: gateway.networking.k8s.io, kind: TCPRoute, name: hashed }',
    `  loadBalancer:
    type: ConsistentHash
    consistentHash: { type: SourceIP }
`,
  )}${policy('limited', '{ group: gateway.networking.k8s.io, kind: TCPRoute, name: limited, sectionName: only }', '  circuitBreaker: { maxConnections: 1 }\n')}${policy(
    'retried',
    '{ group: gateway.networking.k8s.io, kind: TCPRoute, name: retried }',
    '  retry: { numRetries: 1 }\n',
  )}`
}

interface Condition {
  type: string
  status: string
  reason: string
  message: string
}
async function conditions(name: string): Promise<Condition[] | undefined> {
  const res = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/resources`)).json()) as { kind: string; metadata: { name: string }; status?: any }[]
  return res.find((o) => o.kind === 'BackendTrafficPolicy' && o.metadata.name === name)?.status?.ancestors?.[0]?.conditions
}

beforeAll(async () => {
  alpha = await startTcpEcho('alpha')
  beta = await startTcpEcho('beta')
  gamma = await startTcpEcho('gamma')
  ports.rr = await freePort()
  ports.hashed = await freePort()
  ports.limited = await freePort()
  cfg.write('m.yaml', manifests())
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await greeting(ports.limited)) !== undefined, 5000, 'serving')
})

afterAll(async () => {
  await gw?.stop()
  await alpha.stop()
  await beta.stop()
  await gamma.stop()
  cfg.cleanup()
})

test('status: accepted on TCPRoutes and their rules, the Gateway-wide circuitBreaker Overridden, retry Invalid', async () => {
  for (const name of ['rr', 'hashed', 'limited']) {
    const c = await eventually(() => conditions(name), 5000, `${name} status`)
    expect(c.find((x) => x.type === 'Accepted')?.status).toBe('True')
  }
  const wide = await eventually(() => conditions('gateway-wide'))
  expect(wide.find((x) => x.type === 'Accepted')?.status).toBe('True')
  expect(wide.find((x) => x.type === 'Overridden')?.message).toContain('circuitBreaker on TCPRoute default/limited by BackendTrafficPolicy default/limited')
  const retried = await eventually(() => conditions('retried'))
  expect(retried.find((x) => x.type === 'Accepted')).toMatchObject({ status: 'False', reason: 'Invalid' })
  expect(retried.find((x) => x.type === 'Accepted')?.message).toContain('retry acts on HTTP requests only')
})

test('ConsistentHash SourceIP: every connection from one address reaches the same endpoint', async () => {
  const seen = new Set<string | undefined>()
  for (let i = 0; i < 12; i++) seen.add(await greeting(ports.hashed))
  expect(seen.size).toBe(1)
  expect([...seen][0]).toMatch(/^hello from (alpha|beta|gamma)$/)
})

test('circuitBreaker maxConnections 1: a second connection is closed at once; a freed slot admits again', async () => {
  const first = TcpClient.connect(ports.limited)
  await first.waitFor('\n')
  const second = TcpClient.connect(ports.limited)
  expect(await second.closesWithin(2_000)).toBe(true)
  expect(second.received).toBe('')
  first.destroy()
  await eventually(async () => (await greeting(ports.limited))?.startsWith('hello from'), 3000, 'slot freed')
  // the other routes of the same Service are not limited by it
  const open = [TcpClient.connect(ports.rr), TcpClient.connect(ports.rr), TcpClient.connect(ports.rr)]
  for (const c of open) await c.waitFor('\n')
  for (const c of open) c.destroy()
})

test('RoundRobin over every endpoint; a dead endpoint is ejected by the active TCP check and gets no connection', async () => {
  const counts = new Map<string, number>()
  for (let i = 0; i < 15; i++) {
    const g = (await greeting(ports.rr)) ?? 'none'
    counts.set(g, (counts.get(g) ?? 0) + 1)
  }
  expect([...counts.keys()].sort()).toEqual(['hello from alpha', 'hello from beta', 'hello from gamma'])
  for (const n of counts.values()) expect(n).toBeGreaterThanOrEqual(3)

  const gammaPort = gamma.port
  await gamma.stop()
  await eventually(async () => {
    const pools = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/endpoints`)).json()) as { pool: string; loadBalancer: string; endpoints: { endpoint: string; healthy: boolean; active?: unknown }[] }[]
    const variant = pools.find((p) => p.pool.startsWith('default/echo:3000#') && p.loadBalancer === 'RoundRobin' && p.endpoints.some((e) => e.active))
    return variant?.endpoints.find((e) => e.endpoint.endsWith(`:${gammaPort}`))?.healthy === false
  }, 5000, 'gamma unhealthy in /endpoints')

  // something listens on gamma's port again, but the check needs 1000 passes to readmit it
  let revived = 0
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    revived++
    sockets.add(s)
    s.on('error', () => {})
    s.write('hello from revived\n')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(gammaPort, '127.0.0.1', resolve)
  })
  try {
    await Bun.sleep(300) // a few probes connect to it
    const probes = revived
    const seen = new Set<string | undefined>()
    for (let i = 0; i < 20; i++) seen.add(await greeting(ports.rr))
    expect([...seen].sort()).toEqual(['hello from alpha', 'hello from beta'])
    // only the prober's connections reached it (about one per 100 ms), none of the 20 clients'
    expect(revived - probes).toBeLessThanOrEqual(5)
    const hashedSeen = await greeting(ports.hashed)
    expect(hashedSeen).toMatch(/^hello from /)
  } finally {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})
