/**
 * Whole gateway, file mode, real sockets: a TLS port with a Terminate and a Passthrough listener
 * (TLSRouteModeMixed) and a Terminate listener whose backend Service has a BackendTLSPolicy.
 * Translation, status and the L4 data plane together.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Portico } from '../../src/app.ts'
import { freePort, makeCertificate, readUntil, startTcpEcho, startTlsEcho, tlsConnect, type Backend, type Certificate } from '../l4/support/servers.ts'
import { ConfigDir, eventually, startGateway } from './support.ts'

const indent = (pem: string, n: number) => pem.trim().split('\n').map((l) => ' '.repeat(n) + l).join('\n')

let dir: ConfigDir
let gateway: Portico
let front: Certificate
let passCert: Certificate
let backendCert: Certificate
let plain: Backend
let passBackend: Backend
let tlsBackend: Backend
let mixedPort: number
let reencryptPort: number

function manifests(caPem: string): string {
  const service = (name: string, port: number) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ports: [{ name: tcp, port: 443, targetPort: ${port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: tcp, port: ${port} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]`
  const tlsRoute = (name: string, section: string, host: string, backend: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: ${name}, namespace: default, generation: 1 }
spec:
  parentRefs: [{ name: gw, sectionName: ${section} }]
  hostnames: [${host}]
  rules: [{ backendRefs: [{ name: ${backend}, port: 443 }] }]`
  return [
    `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }`,
    `apiVersion: v1
kind: Secret
metadata: { name: front, namespace: default }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(front.certPem, 4)}
  tls.key: |
${indent(front.keyPem, 4)}`,
    `apiVersion: v1
kind: ConfigMap
metadata: { name: backend-ca, namespace: default }
data:
  ca.crt: |
${indent(caPem, 4)}`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default, generation: 1 }
spec:
  gatewayClassName: portico
  listeners:
    - { name: mixed-terminate, protocol: TLS, port: ${mixedPort}, hostname: term.test, tls: { mode: Terminate, certificateRefs: [{ name: front }] } }
    - { name: mixed-passthrough, protocol: TLS, port: ${mixedPort}, hostname: pass.test, tls: { mode: Passthrough } }
    - { name: reencrypt, protocol: TLS, port: ${reencryptPort}, hostname: term.test, tls: { mode: Terminate, certificateRefs: [{ name: front }] } }`,
    service('plain', plain.port),
    service('passthrough', passBackend.port),
    service('secure', tlsBackend.port),
    `apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: { name: secure, namespace: default, generation: 1 }
spec:
  targetRefs: [{ group: "", kind: Service, name: secure }]
  validation: { hostname: backend.test, caCertificateRefs: [{ group: "", kind: ConfigMap, name: backend-ca }] }`,
    tlsRoute('term', 'mixed-terminate', 'term.test', 'plain'),
    tlsRoute('pass', 'mixed-passthrough', 'pass.test', 'passthrough'),
    tlsRoute('reencrypt', 'reencrypt', 'term.test', 'secure'),
  ].join('\n---\n') + '\n'
}

beforeAll(async () => {
  front = makeCertificate(['term.test'])
  passCert = makeCertificate(['pass.test'])
  backendCert = makeCertificate(['backend.test'])
  plain = await startTcpEcho('plain')
  passBackend = await startTlsEcho('pass', passCert)
  tlsBackend = await startTlsEcho('secure', backendCert)
  mixedPort = await freePort()
  reencryptPort = await freePort()
  dir = new ConfigDir()
  dir.write('manifests.yaml', manifests(backendCert.certPem))
  gateway = await startGateway(dir.dir)
})

afterAll(async () => {
  await gateway?.stop()
  for (const b of [plain, passBackend, tlsBackend]) await b?.stop()
  dir?.cleanup()
})

async function greeting(port: number, name: string, ca: string): Promise<string> {
  const socket = await tlsConnect(port, name, ca)
  try {
    return (await readUntil(socket, '\n', 2_000)).trim()
  } finally {
    socket.destroy()
  }
}

describe('TLS mixed termination and re-encryption through the whole gateway', () => {
  test('one port: term.test is terminated to a plain backend, pass.test is spliced to a TLS backend', async () => {
    expect(await eventually(() => greeting(mixedPort, 'term.test', front.certPem), 10_000, 'terminated greeting')).toBe('hello from plain')
    expect(await greeting(mixedPort, 'pass.test', passCert.certPem)).toBe('hello from pass sni=pass.test')
  })

  test('a Terminate listener re-encrypts to a BackendTLSPolicy backend; the policy is Accepted for the Gateway', async () => {
    expect(await eventually(() => greeting(reencryptPort, 'term.test', front.certPem), 10_000, 're-encrypted greeting')).toBe('hello from secure sni=backend.test')
    const resources = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/resources`)).json()) as { kind: string; metadata: { name: string }; status?: any }[]
    const policy = resources.find((r) => r.kind === 'BackendTLSPolicy' && r.metadata.name === 'secure')
    expect(policy?.status?.ancestors?.map((a: any) => a.ancestorRef.name)).toEqual(['gw'])
    expect(policy?.status?.ancestors?.[0]?.conditions.find((c: any) => c.type === 'Accepted')?.status).toBe('True')
    const gw = resources.find((r) => r.kind === 'Gateway')
    expect(gw?.status?.listeners?.map((l: any) => [l.name, l.conditions.find((c: any) => c.type === 'Accepted')?.status, l.attachedRoutes])).toEqual([
      ['mixed-terminate', 'True', 1],
      ['mixed-passthrough', 'True', 1],
      ['reencrypt', 'True', 1],
    ])
  })

  test('a CA that does not sign the backend: the client is closed, nothing arrives', async () => {
    dir.write('manifests.yaml', manifests(passCert.certPem))
    await eventually(async () => {
      try {
        await greeting(reencryptPort, 'term.test', front.certPem)
        return undefined
      } catch {
        return true
      }
    }, 10_000, 'connection refused after the CA change')
  })
})
