#!/usr/bin/env bun
/**
 * HTTP benchmark, run on demand (never in CI): small GET through Portico vs straight to the
 * upstream, in the same run, interleaved so drift on a shared machine hits both alike.
 *
 *   npx bun bench/http.ts                 # 3 reps x 5 s, 64 connections
 *   REPS=5 DURATION=10 CONNECTIONS=128 npx bun bench/http.ts
 *
 * Needs wrk (apt-get install wrk). The upstream is a Bun.serve "hello" in its own process;
 * Portico runs as a separate process from src/main.ts, like in production.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const UPSTREAM_PORT = 21500
const GATEWAY_PORT = 21501
const ADMIN_PORT = 21502
const root = join(import.meta.dir, '..')

if (!Bun.which('wrk')) {
  console.error('wrk not found: apt-get install -y wrk')
  process.exit(2)
}

const upstream = Bun.spawn([process.execPath, '-e', `Bun.serve({ port: ${UPSTREAM_PORT}, hostname: '127.0.0.1', fetch: () => new Response('hello from upstream!') })`], { stdout: 'ignore', stderr: 'inherit' })
const dir = mkdtempSync(join(tmpdir(), 'portico-bench-'))
writeFileSync(
  join(dir, 'bench.yaml'),
  `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: bench }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners: [{ name: http, protocol: HTTP, port: ${GATEWAY_PORT} }]
---
apiVersion: v1
kind: Service
metadata: { name: upstream }
spec: { ports: [{ name: http, port: 80, targetPort: ${UPSTREAM_PORT} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: upstream, labels: { kubernetes.io/service-name: upstream } }
addressType: IPv4
ports: [{ name: http, port: ${UPSTREAM_PORT} }]
endpoints: [{ addresses: [127.0.0.1] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: upstream }
spec:
  parentRefs: [{ name: bench }]
  rules: [{ backendRefs: [{ name: upstream, port: 80 }] }]
`,
)
const gateway = Bun.spawn([process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--admin-port', String(ADMIN_PORT), '--log-level', 'warn'], { stdout: 'inherit', stderr: 'inherit' })

async function waitFor(url: string) {
  for (let i = 0; i < 100; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return
    await Bun.sleep(100)
  }
  throw new Error(`${url} not ready`)
}

interface Result { rps: number; p50ms: number; p99ms: number; errors: number }

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim())
  if (!m) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

async function wrk(port: number): Promise<Result> {
  const p = Bun.spawn(['wrk', '-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', `http://127.0.0.1:${port}/`], { stdout: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const p50 = toMs(/50%\s+(\S+)/.exec(out)?.[1] ?? '')
  const p99 = toMs(/99%\s+(\S+)/.exec(out)?.[1] ?? '')
  const errs = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1]
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = Number(errs ?? 0) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0)
  return { rps, p50ms: p50, p99ms: p99, errors }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

try {
  await waitFor(`http://127.0.0.1:${UPSTREAM_PORT}/`)
  await waitFor(`http://127.0.0.1:${ADMIN_PORT}/readyz`)
  await waitFor(`http://127.0.0.1:${GATEWAY_PORT}/`)
  await wrk(GATEWAY_PORT) // warm-up (JIT, pools)
  const runs: Record<'direct' | 'portico', Result[]> = { direct: [], portico: [] }
  for (let r = 0; r < REPS; r++) {
    const order: ('direct' | 'portico')[] = r % 2 ? ['portico', 'direct'] : ['direct', 'portico']
    for (const t of order) runs[t].push(await wrk(t === 'direct' ? UPSTREAM_PORT : GATEWAY_PORT))
  }
  const summary = (t: 'direct' | 'portico') => ({
    rps: median(runs[t].map((x) => x.rps)),
    p50: median(runs[t].map((x) => x.p50ms)),
    p99: median(runs[t].map((x) => x.p99ms)),
    errors: runs[t].reduce((a, x) => a + x.errors, 0),
  })
  const d = summary('direct')
  const g = summary('portico')
  console.log(`small GET, wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${REPS} reps interleaved (medians)`)
  console.log('target   req/s     p50 ms  p99 ms  errors')
  for (const [name, s] of [['direct', d], ['portico', g]] as const)
    console.log(`${name.padEnd(8)} ${s.rps.toFixed(0).padStart(8)}  ${s.p50.toFixed(2).padStart(6)}  ${s.p99.toFixed(2).padStart(6)}  ${s.errors}`)
  console.log(`ratio portico/direct: req/s ${(g.rps / d.rps).toFixed(2)}x, p99 ${(g.p99 / d.p99).toFixed(2)}x`)
} finally {
  gateway.kill('SIGTERM')
  upstream.kill('SIGTERM')
  await Promise.all([gateway.exited, upstream.exited])
}
