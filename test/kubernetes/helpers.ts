/** Shared fixtures for the Kubernetes-mode tests: objects, a store behind the source, and polling. */
import { StoreIngest } from '../../src/store/ingest.ts'
import { ResourceStore } from '../../src/store/store.ts'
import type { Logger, LogFields } from '../../src/telemetry/logger.ts'

export const CONTROLLER = 'portico.dev/gateway-controller'

/** Polls until `check` returns a truthy value; fails with `what` after `timeoutMs`. Returns the elapsed ms. */
export async function waitFor(what: string, check: () => unknown, timeoutMs = 1000): Promise<number> {
  const started = performance.now()
  for (;;) {
    if (await check()) return performance.now() - started
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await Bun.sleep(5)
  }
}

export function storeWithIngest() {
  const store = new ResourceStore()
  return { store, ingest: new StoreIngest(store) }
}

/** A logger that remembers lines, so tests can assert on warnings. */
export function recordingLogger(): Logger & { lines: { level: string; msg: string; fields?: LogFields }[] } {
  const lines: { level: string; msg: string; fields?: LogFields }[] = []
  const at = (level: string) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, fields })
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

export const gatewayClass = (name = 'portico', controllerName = CONTROLLER) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'GatewayClass',
  metadata: { name },
  spec: { controllerName },
})

export const gateway = (name = 'edge', namespace = 'default', className = 'portico') => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace },
  spec: { gatewayClassName: className, listeners: [{ name: 'http', port: 8080, protocol: 'HTTP' }] },
})

export const httpRoute = (name: string, namespace = 'default', path = '/', backend = 'web') => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace, annotations: { 'konghq.com/strip-path': 'true' } },
  spec: {
    parentRefs: [{ name: 'edge' }],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: [{ name: backend, port: 80 }] }],
  },
})

export const service = (name: string, namespace = 'default') => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
})
