/**
 * The whole gateway process in Kubernetes mode against the stand-in API server (real TLS,
 * list/watch, status subresource): objects created, changed and deleted in the API move traffic,
 * and status is written back.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { hasOpenssl, startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver/index.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { eventually, freePort } from './support.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { privateKeyNeedles } from '../support/secret-needles.ts'

const skip = !hasOpenssl()
let api: FakeApiServer
let proc: ReturnType<typeof Bun.spawn>
let v1: EchoUpstream
let v2: EchoUpstream
let port: number
let adminPort: number

const GW = 'gateway.networking.k8s.io/v1'
const service = (name: string, target: number) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80, targetPort: target }] } })
const slice = (name: string, target: number) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${name}-x1`, namespace: 'shop', labels: { 'kubernetes.io/service-name': name } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: target }],
  endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
})
const route = (name: string, prefix: string, backend: string) => ({
  apiVersion: GW,
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'shop' },
  spec: { parentRefs: [{ name: 'edge' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: prefix } }], backendRefs: [{ name: backend, port: 80 }] }] },
})
const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then(async (r) => (r.status === 200 ? ((await r.json()) as { name: string }).name : r.status), () => 0)
const cond = (conds: any[] | undefined, type: string) => conds?.find((c) => c.type === type)

beforeAll(async () => {
  if (skip) return
  v1 = startEcho('v1')
  v2 = startEcho('v2')
  port = await freePort()
  api = startFakeApiServer({ tls: true })
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } })
  api.apply({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'portico' }, spec: { controllerName: 'portico.dev/gateway-controller' } })
  api.apply({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'other' }, spec: { controllerName: 'example.com/other' } })
  api.apply({ apiVersion: GW, kind: 'Gateway', metadata: { name: 'edge', namespace: 'shop' }, spec: { gatewayClassName: 'portico', listeners: [{ name: 'http', protocol: 'HTTP', port }] } })
  api.apply({ apiVersion: GW, kind: 'Gateway', metadata: { name: 'theirs', namespace: 'shop' }, spec: { gatewayClassName: 'other', listeners: [{ name: 'http', protocol: 'HTTP', port: 1 }] } })
  for (const [n, p] of [['v1', v1.port], ['v2', v2.port]] as const) {
    api.apply(service(n, p))
    api.apply(slice(n, p))
  }
  api.apply(route('shop', '/', 'v1'))
  const kubeconfig = api.writeKubeconfig()
  adminPort = await freePort()
  proc = Bun.spawn([process.execPath, 'src/main.ts', '--kubernetes', '--kubeconfig', kubeconfig, '--admin-port', String(adminPort), '--probe-port', '0', '--workers', '1', '--log-level', 'warn'], {
    stdout: 'inherit',
    stderr: 'inherit',
    env: { ...process.env, POD_NAMESPACE: 'shop', NODE_EXTRA_CA_CERTS: '' },
  })
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200, 15_000, 'ready')
})

afterAll(async () => {
  if (skip) return
  proc.kill('SIGTERM')
  await proc.exited
  await api.stop()
  await v1.stop()
  await v2.stop()
})

test.skipIf(skip)('serves what the API holds and writes status back with observedGeneration', async () => {
  expect(await get('/a')).toBe('v1')
  await eventually(() => {
    const gw = api.getObject('Gateway', 'shop', 'edge')
    return cond(gw?.status?.conditions, 'Programmed')?.status === 'True' ? gw : undefined
  }, 5000, 'Gateway status written')
  const rt = await eventually(() => {
    const r = api.getObject('HTTPRoute', 'shop', 'shop')
    return r?.status?.parents?.length ? r : undefined
  }, 5000, 'HTTPRoute status written')
  expect(cond(rt.status.parents[0].conditions, 'Accepted')).toMatchObject({ status: 'True', observedGeneration: rt.metadata.generation })
  expect(cond(rt.status.parents[0].conditions, 'ResolvedRefs')?.status).toBe('True')
  // another controller's objects are never touched
  expect(api.getObject('GatewayClass', undefined, 'other').status?.conditions ?? []).toEqual([])
  expect(api.getObject('Gateway', 'shop', 'theirs').status?.listeners ?? []).toEqual([])
})

test.skipIf(skip)('create, change and delete move traffic within a second', async () => {
  const started = performance.now()
  api.apply(route('v2-only', '/v2', 'v2'))
  await eventually(async () => (await get('/v2/x')) === 'v2', 1000, 'new route serving')
  const changed = route('v2-only', '/v2', 'v1')
  api.apply(changed)
  await eventually(async () => (await get('/v2/x')) === 'v1', 1000, 'changed route serving')
  api.remove('HTTPRoute', 'shop', 'v2-only')
  await eventually(async () => (await get('/v2/x')) === 'v1', 1000, 'falls back to the / route')
  api.remove('EndpointSlice', 'shop', 'v1-x1')
  await eventually(async () => (await get('/')) === 503, 1000, 'no endpoints → 503')
  api.apply(slice('v1', v1.port))
  await eventually(async () => (await get('/')) === 'v1', 1000, 'endpoints back')
  expect(performance.now() - started).toBeLessThan(5000)
})

test.skipIf(skip)('a new Gateway opens its port within a second, deleting it closes the port; a deleted Service answers 500', async () => {
  const extra = await freePort()
  api.apply({ apiVersion: GW, kind: 'Gateway', metadata: { name: 'side', namespace: 'shop' }, spec: { gatewayClassName: 'portico', listeners: [{ name: 'http', protocol: 'HTTP', port: extra }] } })
  api.apply({ ...route('side', '/', 'v2'), spec: { parentRefs: [{ name: 'side' }], rules: [{ backendRefs: [{ name: 'v2', port: 80 }] }] } })
  const side = () => fetch(`http://127.0.0.1:${extra}/s`).then(async (r) => (r.status === 200 ? ((await r.json()) as { name: string }).name : r.status), () => 0)
  await eventually(async () => (await side()) === 'v2', 1000, 'new Gateway serving')
  api.remove('Gateway', 'shop', 'side')
  await eventually(async () => (await side()) === 0, 1000, 'deleted Gateway closed its port')
  api.remove('Service', 'shop', 'v2')
  api.apply(route('needs-v2', '/needs-v2', 'v2'))
  await eventually(async () => (await get('/needs-v2')) === 500, 1000, '500 once the Service is gone')
  api.apply(service('v2', v2.port))
  await eventually(async () => (await get('/needs-v2')) === 'v2', 1000, 'Service back')
  // a spec change bumps generation and the written status follows it
  const before = api.getObject('HTTPRoute', 'shop', 'needs-v2').metadata.generation
  api.apply(route('needs-v2', '/needs-v2-changed', 'v2'))
  await eventually(() => {
    const r = api.getObject('HTTPRoute', 'shop', 'needs-v2')
    const accepted = cond(r?.status?.parents?.[0]?.conditions, 'Accepted')
    return r.metadata.generation > before && accepted?.observedGeneration === r.metadata.generation ? true : undefined
  }, 5000, 'observedGeneration follows the new generation')
})

test.skipIf(skip)('a missing backend answers 500 and shows ResolvedRefs=False/BackendNotFound; other routes keep working', async () => {
  api.apply(route('broken', '/broken', 'nope'))
  await eventually(async () => (await get('/broken')) === 500, 1000, '500 for the broken route')
  expect(await get('/fine')).toBe('v1')
  const r = await eventually(() => {
    const o = api.getObject('HTTPRoute', 'shop', 'broken')
    return cond(o?.status?.parents?.[0]?.conditions, 'ResolvedRefs')?.status === 'False' ? o : undefined
  }, 5000, 'BackendNotFound status')
  expect(cond(r.status.parents[0].conditions, 'ResolvedRefs').reason).toBe('BackendNotFound')
})

test.skipIf(skip)('dropped watches and a forced 410 recover without stale state', async () => {
  api.apply(route('temp', '/temp', 'v2'))
  await eventually(async () => (await get('/temp')) === 'v2', 1000, 'temp route')
  await api.setUnavailable(true)
  await api.dropWatches()
  api.remove('HTTPRoute', 'shop', 'temp')
  api.compact() // the watch cannot resume: the next watch gets 410 and must relist
  await api.setUnavailable(false)
  await eventually(async () => (await get('/temp')) === 'v1', 10_000, 'deleted-while-down route gone')
})

test.skipIf(skip)('Secrets from the API server: /resources shows key names and a certificate summary, no value anywhere in the views', async () => {
  const cert = makeCertificate(['secure.shop.example'])
  const OPAQUE = 'k8s-opaque-Rt5wXc9Lm2-b41e'
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  const tlsSecret = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'shop-tls', namespace: 'shop' }, data: { 'tls.crt': b64(cert.certPem), 'tls.key': b64(cert.keyPem) } }
  const opaque = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'shop-creds', namespace: 'shop' }, data: { password: b64(OPAQUE), username: b64('shop') } }
  // as `kubectl apply` leaves them: the whole Secret again in an annotation
  for (const secret of [tlsSecret, opaque])
    api.apply({ ...secret, metadata: { ...secret.metadata, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(secret) } } })
  const httpsPort = await freePort()
  api.apply({
    apiVersion: GW,
    kind: 'Gateway',
    metadata: { name: 'secure', namespace: 'shop' },
    spec: { gatewayClassName: 'portico', listeners: [{ name: 'https', protocol: 'HTTPS', port: httpsPort, tls: { mode: 'Terminate', certificateRefs: [{ name: 'shop-tls' }] } }] },
  })
  const admin = `http://127.0.0.1:${adminPort}`
  const config = await eventually(async () => {
    const text = await (await fetch(`${admin}/config`)).text()
    return text.includes(`"port":${httpsPort}`) && text.includes('"certificate"') ? text : undefined
  }, 5000, 'the HTTPS listener in /config')
  const resourcesText = await (await fetch(`${admin}/resources`)).text()
  const all = JSON.parse(resourcesText) as any[]
  const secret = (name: string) => all.find((o) => o.kind === 'Secret' && o.metadata.name === name)
  expect(secret('shop-tls').redacted).toMatchObject({ keys: ['tls.crt', 'tls.key'], certificate: { subject: 'CN=secure.shop.example', sans: ['DNS:secure.shop.example'] } })
  expect(secret('shop-tls').redacted.certificate.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  expect(secret('shop-creds').redacted).toEqual({ keys: ['password', 'username'] })
  expect(secret('shop-creds').metadata).toMatchObject({ name: 'shop-creds', namespace: 'shop' })
  expect(secret('shop-creds').metadata.uid).toBeString()
  expect(JSON.parse(config).http.find((p: any) => p.port === httpsPort).listeners[0].tls.certificates[0]).toMatchObject({ keyPem: '[redacted]', certificate: { subject: 'CN=secure.shop.example' } })
  const needles = [OPAQUE, b64(OPAQUE), 'last-applied-configuration', ...privateKeyNeedles(cert.keyPem, cert.certPem).map(([, n]) => n)]
  for (const [view, text] of [['/resources', resourcesText], ['/config', config], ['/problems', await (await fetch(`${admin}/problems`)).text()]] as const)
    expect({ view, leaks: needles.filter((n) => text.includes(n)) }).toEqual({ view, leaks: [] })
  api.remove('Gateway', 'shop', 'secure')
})
