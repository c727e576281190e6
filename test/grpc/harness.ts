/**
 * A Portico with gRPC echo backends for the GRPCRoute tests: the upstream conformance
 * infrastructure in small (GatewayClass, a Gateway "same-namespace" in gateway-conformance-infra,
 * Services grpc-infra-backend-v1..v3 with appProtocol kubernetes.io/h2c), plus the test's own
 * manifests. Everything binds port 0 or a free port on loopback.
 */
import type { Portico } from '../../src/app.ts'
import { closeUpstreamSessions } from '../../src/dataplane/http2/upstream-sessions.ts'
import { ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'
import { echoClient, grpc, startEchoBackend, unary, type EchoBackend } from './echo.ts'

export const NS = 'gateway-conformance-infra'

export function service(name: string, target: number, opts: { appProtocol?: string; port?: number; portName?: string } = {}): string {
  const port = opts.port ?? 8080
  const portName = opts.portName ?? 'grpc'
  const app = opts.appProtocol === '' ? '' : `, appProtocol: ${opts.appProtocol ?? 'kubernetes.io/h2c'}`
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${NS} }
spec: { ports: [{ name: ${portName}, port: ${port}, targetPort: ${target}${app} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: ${NS}, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: ${portName}, port: ${target} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
`
}

export function infra(port: number, backends: readonly EchoBackend[], listeners?: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: same-namespace, namespace: ${NS} }
spec:
  gatewayClassName: portico
  listeners: ${listeners ?? `[{ name: http, port: ${port}, protocol: HTTP, allowedRoutes: { namespaces: { from: Same } } }]`}
---
${backends.map((b) => service(b.name, b.port)).join('---\n')}`
}

export class GrpcHarness {
  readonly cfg = new ConfigDir()
  backends: EchoBackend[] = []
  gw: Portico | undefined
  port = 0

  /** Backends grpc-infra-backend-v1..v<n>, a free listener port, the infrastructure manifests. */
  async start(n = 3, listeners?: (port: number) => string): Promise<void> {
    for (let i = 1; i <= n; i++) this.backends.push(await startEchoBackend(`grpc-infra-backend-v${i}`))
    this.port = await freePort()
    this.cfg.write('infra.yaml', infra(this.port, this.backends, listeners?.(this.port)))
  }

  async run(): Promise<void> {
    this.gw = await startGateway(this.cfg.dir)
  }

  /**
   * The common setup: one backend, a GRPCRoute `name` sending every call to it, the gateway
   * running, and a client whose first Echo has succeeded (the route is live).
   */
  async startCatchAll(name: string): Promise<grpc.Client> {
    await this.start(1)
    this.cfg.write(
      'route.yaml',
      `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: ${name}, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }] }]
`,
    )
    await this.run()
    const client = echoClient(this.port)
    await eventually(async () => (await unary(client, 'Echo')).code === 0 || undefined, 10_000, 'route live')
    return client
  }

  async stop(): Promise<void> {
    closeUpstreamSessions()
    await this.gw?.stop()
    await Promise.all(this.backends.map((b) => b.stop()))
    this.cfg.cleanup()
  }
}
