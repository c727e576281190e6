/** Helpers for whole-gateway tests: a config folder, a free port, Portico started in-process. */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPortico, type Portico } from '../../src/app.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

export class ConfigDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'portico-e2e-'))
  /** Replaces a file atomically, as `kubectl`-style tooling and the conformance runner do. */
  write(name: string, text: string): void {
    const tmp = join(this.dir, `.tmp-${Math.random().toString(36).slice(2)}`)
    writeFileSync(tmp, text)
    renameSync(tmp, join(this.dir, name))
  }
  remove(name: string): void {
    rmSync(join(this.dir, name), { force: true })
  }
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export async function startGateway(dir: string): Promise<Portico> {
  return startPortico({ configDir: dir, adminPort: 0, adminAddress: '127.0.0.1', bindAddress: '127.0.0.1', controllerName: 'portico.dev/gateway-controller', logger: silentLogger })
}

export async function eventually<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 5000, what = 'condition'): Promise<T> {
  const until = Date.now() + ms
  let last: unknown
  while (Date.now() < until) {
    try {
      const v = await fn()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      last = err
    }
    await Bun.sleep(25)
  }
  throw new Error(`${what} not reached within ${ms} ms${last ? `: ${last}` : ''}`)
}

/** Gateway + Service + EndpointSlice manifests for a listener on `port` and named backends. */
export function baseManifests(port: number, backends: Record<string, number>): string {
  const docs = [
    `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default, generation: 1 }
spec:
  gatewayClassName: portico
  listeners: [{ name: http, protocol: HTTP, port: ${port} }]`,
  ]
  for (const [name, backendPort] of Object.entries(backends)) {
    docs.push(`apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ports: [{ name: http, port: 80, targetPort: ${backendPort} }] }`)
    docs.push(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: ${backendPort} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]`)
  }
  return docs.join('\n---\n') + '\n'
}

/** An HTTPRoute sending `prefix` to `backend`. */
export function route(name: string, prefix: string, backend: string, generation = 1): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default, generation: ${generation} }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]
      backendRefs: [{ name: ${backend}, port: 80 }]
`
}
