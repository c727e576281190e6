/**
 * A two-member Composite aggregate against the client making the two calls itself, through the
 * same Portico, interleaved in rounds so load on the (shared) machine hits all three alike:
 *
 *   aggregate   one GET /agg/<id>: Portico calls users and orders at once and merges the JSON
 *   sequential  GET /users/<id> then GET /orders?user=<id> (a client that waits for one to build the next)
 *   parallel    both GETs at once (the best a client can do without aggregation)
 *
 * Each backend answers JSON after BACKEND_MS (default 5 ms: a service doing some work). The
 * client's own network round trip is loopback here; on a phone each extra round trip adds its RTT,
 * which is what aggregation saves and what this benchmark cannot show: compare the ratios.
 *
 *   npx bun bench/aggregate.ts                 # 5 rounds × 400 requests per mode, concurrency 8
 *   BACKEND_MS=0 ROUNDS=3 N=1000 npx bun bench/aggregate.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './lib.ts'

const BACKEND_MS = Number(process.env.BACKEND_MS ?? 5)
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const N = Number(process.env.N ?? 400)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8)
const root = join(import.meta.dir, '..')

const BACKEND = `
const delay = ${BACKEND_MS}
Bun.serve({ port: Number(process.argv[1]), hostname: '127.0.0.1', async fetch(req) {
  const url = new URL(req.url)
  if (delay) await Bun.sleep(delay)
  if (url.pathname.startsWith('/users/')) return Response.json({ id: url.pathname.slice(7), name: 'Ada', email: 'ada@example.com' })
  return Response.json({ data: [{ id: 1, total: 10, status: 'paid' }, { id: 2, total: 25, status: 'open' }] })
} })
`

const [usersPort, ordersPort, gwPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()]
const backends = [usersPort, ordersPort].map((p) => Bun.spawn([process.execPath, '-e', BACKEND, String(p)], { stdout: 'inherit', stderr: 'inherit' }))

const dir = mkdtempSync(join(tmpdir(), 'portico-bench-agg-'))
const svc = (name: string, port: number) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints: [{ addresses: [127.0.0.1] }]
`
writeFileSync(
  join(dir, 'bench.yaml'),
  `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec: { gatewayClassName: portico, listeners: [{ name: http, protocol: HTTP, port: ${gwPort} }] }
---
${svc('users', usersPort)}---
${svc('orders', ordersPort)}---
apiVersion: gateway.portico.dev/v1alpha1
kind: Composite
metadata: { name: profile, namespace: default }
spec:
  pathPattern: /agg/{id}
  members:
  - { backendRef: { name: users, port: 80 }, path: '/users/{id}' }
  - { backendRef: { name: orders, port: 80 }, path: '/orders?user={id}', group: orders, target: data }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: bench, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /agg } }]
    backendRefs: [{ group: gateway.portico.dev, kind: Composite, name: profile }]
  - matches: [{ path: { type: PathPrefix, value: /users } }]
    backendRefs: [{ name: users, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /orders } }]
    backendRefs: [{ name: orders, port: 80 }]
`,
)
const gateway = Bun.spawn([process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', process.env.WORKERS ?? '1', '--admin-port', String(adminPort), '--log-level', 'warn', '--access-log', 'off'], { stdout: 'inherit', stderr: 'inherit' })

// children never outlive the benchmark (a timeout or Ctrl-C would orphan them)
const stopChildren = () => {
  gateway.kill()
  for (const b of backends) b.kill()
}
process.on('exit', stopChildren)
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    stopChildren()
    process.exit(130)
  })

const base = `http://127.0.0.1:${gwPort}`
for (let i = 0; ; i++) {
  if ((await fetch(`${base}/agg/1`).then((r) => r.status, () => 0)) === 200) break
  if (i > 200) throw new Error('gateway did not start')
  await Bun.sleep(50)
}

const get = async (path: string) => {
  const res = await fetch(`${base}${path}`)
  if (res.status !== 200) throw new Error(`${path}: ${res.status}`)
  await res.arrayBuffer()
}
const MODES: Record<string, (id: number) => Promise<void>> = {
  aggregate: (id) => get(`/agg/${id}`),
  sequential: async (id) => {
    await get(`/users/${id}`)
    await get(`/orders?user=${id}`)
  },
  parallel: async (id) => {
    await Promise.all([get(`/users/${id}`), get(`/orders?user=${id}`)])
  },
}

async function run(mode: (id: number) => Promise<void>): Promise<number[]> {
  const times: number[] = []
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const id = next++
        const t0 = performance.now()
        await mode(id)
        times.push(performance.now() - t0)
      }
    }),
  )
  return times
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
const all: Record<string, number[]> = { aggregate: [], sequential: [], parallel: [] }
for (const mode of Object.values(MODES)) await run(mode) // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, mode] of Object.entries(MODES)) all[name]!.push(...(await run(mode)))

console.log(`two-member aggregate vs two client calls; backend work ${BACKEND_MS} ms, ${ROUNDS}×${N} per mode, concurrency ${CONCURRENCY}, ${process.env.WORKERS ?? '1'} worker(s)`)
const agg = all.aggregate!.sort((a, b) => a - b)
for (const [name, times] of Object.entries(all)) {
  const s = times.sort((a, b) => a - b)
  const p50 = pct(s, 50)
  const p99 = pct(s, 99)
  console.log(`${name.padEnd(11)} p50 ${p50.toFixed(2).padStart(7)} ms  p99 ${p99.toFixed(2).padStart(7)} ms   aggregate/this: p50 ${(pct(agg, 50) / p50).toFixed(2)}x  p99 ${(pct(agg, 99) / p99).toFixed(2)}x`)
}

console.log((await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).split('\n').filter((l) => l.startsWith('portico_composite_member_requests_total')).join('\n'))
gateway.kill()
for (const b of backends) b.kill()
await gateway.exited
rmSync(dir, { recursive: true, force: true })
