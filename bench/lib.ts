/** Shared pieces of the on-demand benchmarks: wrk runs, readiness polling, medians, manifests. */

export const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export async function waitFor(url: string, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return
    await Bun.sleep(50)
  }
  throw new Error(`${url} not ready`)
}

export interface WrkResult {
  rps: number
  p50ms: number
  p99ms: number
  /** Non-2xx/3xx responses plus socket errors. */
  errors: number
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim())
  if (!m) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

export function parseWrk(out: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const p50 = toMs(/50%\s+(\S+)/.exec(out)?.[1] ?? '')
  const p99 = toMs(/99%\s+(\S+)/.exec(out)?.[1] ?? '')
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return { rps, p50ms: p50, p99ms: p99, errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) }
}

/** Runs wrk and parses its summary; `cmdPrefix` can pin it to a core (taskset). */
export async function wrk(url: string, opts: { connections: number; seconds: number; cmdPrefix?: string[] }): Promise<WrkResult> {
  const p = Bun.spawn([...(opts.cmdPrefix ?? []), 'wrk', '-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', url], { stdout: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  return parseWrk(out)
}

/** Resident set size of a process, in MiB, from /proc. */
export function rssMiB(pid: number): number {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024
  } catch {
    return NaN
  }
}

/** GatewayClass + Gateway (one HTTP listener) + a Service/EndpointSlice for a local upstream. */
export function gatewayManifests(gatewayPort: number, upstreamPort: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: bench }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners: [{ name: http, protocol: HTTP, port: ${gatewayPort} }]
---
apiVersion: v1
kind: Service
metadata: { name: upstream }
spec: { ports: [{ name: http, port: 80, targetPort: ${upstreamPort} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: upstream, labels: { kubernetes.io/service-name: upstream } }
addressType: IPv4
ports: [{ name: http, port: ${upstreamPort} }]
endpoints: [{ addresses: [127.0.0.1] }]
`
}

export function prefixRoute(name: string, prefix: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name} }
spec:
  parentRefs: [{ name: bench }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: ${prefix} } }], backendRefs: [{ name: upstream, port: 80 }] }]
`
}
