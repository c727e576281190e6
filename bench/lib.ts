/** Shared pieces of the on-demand benchmarks: wrk runs, readiness polling, medians, manifests. */
import { createServer } from 'node:net'

export const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** Prefixes a command with `taskset -c <cpu>` when taskset exists (benchmarks pin proxy and load apart). */
export const pin = (cpu: number, cmd: string[]): string[] => (Bun.which('taskset') ? ['taskset', '-c', String(cpu), ...cmd] : cmd)

export async function waitFor(url: string, tries = 200, init?: RequestInit): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fetch(url, init).then((r) => r.ok, () => false)) return
    await Bun.sleep(50)
  }
  throw new Error(`${url} not ready`)
}

export interface WrkResult {
  rps: number
  /** Requests completed in the run. */
  requests: number
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
  // anchored: an unanchored /50%/ can hit the "+/- Stdev" column of the Thread Stats table
  const p50 = toMs(/^\s*50%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const p99 = toMs(/^\s*99%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1])
  return { rps, requests, p50ms: p50, p99ms: p99, errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) }
}

/** Runs wrk and parses its summary; `cmdPrefix` can pin it to a core (taskset). */
export async function wrk(url: string, opts: { connections: number; seconds: number; cmdPrefix?: string[] }): Promise<WrkResult> {
  const p = Bun.spawn([...(opts.cmdPrefix ?? []), 'wrk', '-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', url], { stdout: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  return parseWrk(out)
}

/** utime+stime (clock ticks) of a process and its children (nginx's master + worker). */
export async function cpuTicks(pid: number | undefined): Promise<number> {
  const { user, system } = await cpuTimes(pid)
  return user + system
}

/** utime and stime (clock ticks) apart: where a proxy's CPU goes, its own code or the kernel's. */
export async function cpuTimes(pid: number | undefined): Promise<{ user: number; system: number }> {
  if (pid === undefined) return { user: NaN, system: NaN }
  let user = 0
  let system = 0
  const pids = [pid]
  const children = await Bun.file(`/proc/${pid}/task/${pid}/children`).text().catch(() => '')
  for (const child of children.split(' ').filter(Boolean)) pids.push(Number(child))
  for (const p of pids) {
    const stat = await Bun.file(`/proc/${p}/stat`).text().catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    user += Number(fields[11] ?? 0)
    system += Number(fields[12] ?? 0)
  }
  return { user, system }
}
export const TICK_US = 1e6 / 100 // CLK_TCK is 100 on Linux

/** Resident set size of a process, in MiB, from /proc. */
export function rssMiB(pid: number): number {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024
  } catch {
    return NaN
  }
}

/** The benchmark GatewayClass (Portico's controllerName). */
export const benchGatewayClass = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: bench }
spec: { controllerName: portico.dev/gateway-controller }
`

/** A Service with one port and an EndpointSlice pointing it at 127.0.0.1:`port`. */
export function localService(name: string, port: number): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name} }
spec: { ports: [{ name: http, port: 80, targetPort: ${port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints: [{ addresses: [127.0.0.1] }]
`
}

/** GatewayClass + Gateway (one HTTP listener) + a Service/EndpointSlice "upstream" for a local upstream. */
export function gatewayManifests(gatewayPort: number, upstreamPort: number): string {
  return `${benchGatewayClass}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners: [{ name: http, protocol: HTTP, port: ${gatewayPort} }]
---
${localService('upstream', upstreamPort)}`
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

/** A port free on loopback now (the OS picks it; the caller binds it next). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}
