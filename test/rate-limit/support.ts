/** Helpers for the rate-limit tests: policy manifests, Portico processes, and window timing. */
import { baseManifests, ConfigDir, eventually, freePort } from '../e2e/support.ts'

export { baseManifests, ConfigDir, eventually, freePort }

/** HTTPRoute `name` for `prefix` to Service `backend`. */
export function httpRoute(name: string, prefix: string, backend: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]
      backendRefs: [{ name: ${backend}, port: 80 }]
`
}

/** A BackendTrafficPolicy on HTTPRoute `route` with `rateLimit` (YAML, indented under rateLimit:). */
export function rateLimitPolicy(name: string, route: string, rateLimitYaml: string): string {
  return `apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]
  rateLimit:
${rateLimitYaml.replace(/^/gm, '    ')}
`
}

export interface PorticoProcess {
  readonly port: number
  readonly base: string
  readonly probe: string
  readonly proc: ReturnType<typeof Bun.spawn>
  stop(): Promise<void>
}

/** `src/main.ts` in its own process on the config folder, ready (first snapshot live) when returned. */
export async function startPorticoProcess(cfg: ConfigDir, port: number, args: string[], env: Record<string, string> = {}): Promise<PorticoProcess> {
  const [adminPort, probePort] = await Promise.all([freePort(), freePort()])
  const proc = Bun.spawn(
    [process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', String(probePort), '--bind-address', '127.0.0.1', '--log-level', 'warn', ...args],
    { stdout: 'inherit', stderr: 'pipe', env: { ...process.env, ...env } },
  )
  const probe = `http://127.0.0.1:${probePort}`
  await eventually(async () => (await fetch(`${probe}/readyz`).then((r) => r.status, () => 0)) === 200, 15_000, 'portico ready')
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    probe,
    proc,
    async stop() {
      proc.kill('SIGTERM')
      await proc.exited
    },
  }
}

/** Waits until the current fixed window of `unitSeconds` has at least `needSeconds` left (tests must not straddle a window). */
export async function awayFromWindowEdge(unitSeconds: number, needSeconds: number): Promise<void> {
  const left = () => unitSeconds - ((Date.now() / 1000) % unitSeconds)
  if (left() < needSeconds) await Bun.sleep(left() * 1000 + 50)
}

/** One request on a fresh connection (so requests spread over worker threads and processes). */
export async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; ms: number; body: string }> {
  const started = performance.now()
  const res = await fetch(`${base}${path}`, { headers: { connection: 'close', ...headers } })
  const body = await res.text()
  return { status: res.status, headers: res.headers, ms: performance.now() - started, body }
}
