/**
 * The Kubernetes watcher against the stand-in API server over real TLS (client certificate or
 * service-account token, CA from the kubeconfig / service-account folder, no NODE_EXTRA_CA_CERTS).
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KubeConfig } from '@kubernetes/client-node'
import { KubernetesSource } from '../../src/sources/kubernetes/index.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { DEFAULT_RESOURCES, generatePki, startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver/index.ts'
import { gateway, gatewayClass, httpRoute, recordingLogger, service, storeWithIngest, waitFor } from './helpers.ts'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function setup(serverOpts: Parameters<typeof startFakeApiServer>[0] = {}, sourceOpts: Partial<ConstructorParameters<typeof KubernetesSource>[0]> = {}) {
  const server = startFakeApiServer({ bookmarkIntervalMs: 200, ...serverOpts })
  cleanups.push(() => server.stop())
  const { store, ingest } = storeWithIngest()
  const source = new KubernetesSource({ kubeconfig: server.writeKubeconfig(), logger: silentLogger, backoff: { initialMs: 20, maxMs: 200 }, ...sourceOpts })
  cleanups.push(() => source.stop())
  return { server, store, ingest, source }
}

const seed = (server: FakeApiServer) => {
  server.apply(gatewayClass())
  server.apply(gateway())
  server.apply(httpRoute('a', 'default', '/a'))
  server.apply(service('web'))
}

describe('KubernetesSource', () => {
  test('delivers the initial lists over HTTPS with the kubeconfig CA and client certificate', async () => {
    const { server, store, ingest, source } = await setup()
    // whatever the environment trusts, it is not this test's CA
    expect(process.env.NODE_EXTRA_CA_CERTS ?? '').not.toContain(server.pki!.dir)
    seed(server)
    server.apply({ ...httpRoute('big'), metadata: { ...httpRoute('big').metadata, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"x":1}', keep: 'me' } } })
    await source.start(ingest)
    expect(server.url.startsWith('https://')).toBe(true)
    // everything is in the store the moment start() resolves
    expect(store.get('GatewayClass//portico')).toBeDefined()
    expect(store.get('Gateway/default/edge')?.spec.listeners[0].port).toBe(8080)
    expect(store.get('HTTPRoute/default/a')?.metadata.annotations).toEqual({ 'konghq.com/strip-path': 'true' })
    // core list items come without apiVersion/kind and still land as Services
    expect(store.get('Service/default/web')?.apiVersion).toBe('v1')
    expect(store.get('Namespace//kube-system')).toBeDefined()
    const big = store.get('HTTPRoute/default/big')!
    expect(big.metadata.annotations).toEqual({ keep: 'me' })
    expect((big.metadata as any).managedFields).toBeUndefined()
    expect(source.served.get('TLSRoute')?.version).toBe('v1alpha3')
    expect(source.served.get('UDPRoute')?.version).toBe('v1alpha2')
    expect(ingest.problems()).toEqual([])
  })

  test('create, change and delete reach the store within a second', async () => {
    const { server, store, ingest, source } = await setup()
    seed(server)
    await source.start(ingest)
    const created = await waitFor('route b', () => store.get('HTTPRoute/default/b'), 1000).then(
      (ms) => ms,
      (e) => e,
    )
    expect(created).toBeInstanceOf(Error) // not there yet: nothing created it
    server.apply(httpRoute('b', 'default', '/b'))
    const tCreate = await waitFor('route b created', () => store.get('HTTPRoute/default/b'))
    server.apply(httpRoute('b', 'default', '/b2'))
    const tChange = await waitFor('route b changed', () => store.get('HTTPRoute/default/b')?.spec.rules[0].matches[0].path.value === '/b2')
    server.remove('HTTPRoute', 'default', 'b')
    const tDelete = await waitFor('route b deleted', () => !store.get('HTTPRoute/default/b'))
    server.remove('Service', 'default', 'web')
    await waitFor('service deleted', () => !store.get('Service/default/web'))
    for (const ms of [tCreate, tChange, tDelete]) expect(ms).toBeLessThan(1000)
    console.log(`watch latency ms: create ${tCreate.toFixed(1)} change ${tChange.toFixed(1)} delete ${tDelete.toFixed(1)}`)
  })

  test('an invalid object is reported as a problem, and its last good version is kept', async () => {
    const { server, store, ingest, source } = await setup()
    seed(server)
    await source.start(ingest)
    const broken = gateway()
    ;(broken.spec as any).listeners = []
    server.apply(broken)
    await waitFor('problem reported', () => ingest.problems().length === 1)
    expect(ingest.problems()[0]).toMatchObject({ origin: 'kubernetes:Gateway', objectKey: 'Gateway/default/edge' })
    expect(store.get('Gateway/default/edge')?.spec.listeners).toHaveLength(1)
  })

  test('dropped watches resume from the last resourceVersion without a relist or lost events', async () => {
    const { server, store, ingest, source } = await setup()
    seed(server)
    await source.start(ingest)
    const reflector = source.reflectors.get('HTTPRoute')!
    await waitFor('route watch open', () => server.watchersOf('httproutes') === 1)
    await Bun.sleep(50)
    await server.dropWatches()
    expect(server.watchersOf('httproutes')).toBe(0)
    // changes while the watch is down are replayed by the resumed watch
    server.apply(httpRoute('during', 'default', '/during'))
    server.remove('HTTPRoute', 'default', 'a')
    await waitFor('resumed state', () => store.get('HTTPRoute/default/during') && !store.get('HTTPRoute/default/a'), 3000)
    // a new watch, resumed from the listed resourceVersion: no relist, nothing missed. (Bun's fetch
    // may itself retry a watch whose connection died before the first byte; same request, same rv.)
    const listedRv = server.requests.find((r) => r.method === 'GET' && r.path === '/apis/gateway.networking.k8s.io/v1/httproutes')
    expect(listedRv).toBeDefined()
    const routeWatches = server.watchRequests.filter((w) => w.plural === 'httproutes')
    expect(routeWatches.length).toBeGreaterThanOrEqual(2)
    expect(new Set(routeWatches.map((w) => w.resourceVersion)).size).toBe(1)
    expect(reflector.stats.lists).toBe(1)
    expect(reflector.stats.expired).toBe(0)
  })

  for (const expiredWatch of ['event', 'status'] as const) {
    test(`a 410 Gone (${expiredWatch === 'event' ? 'ERROR event' : 'HTTP status'}) relists, and what was deleted meanwhile disappears`, async () => {
      const logger = recordingLogger()
      const { server, store, ingest, source } = await setup({ expiredWatch, bookmarkIntervalMs: 60_000 }, { logger })
      seed(server)
      server.apply(httpRoute('doomed'))
      await source.start(ingest)
      const reflector = source.reflectors.get('HTTPRoute')!
      await server.setUnavailable(true)
      server.remove('HTTPRoute', 'default', 'doomed')
      server.apply(httpRoute('newcomer'))
      server.compact() // the deletion event is gone from history: only a relist can reveal it
      await Bun.sleep(50)
      await server.setUnavailable(false)
      await waitFor('relisted state', () => !store.get('HTTPRoute/default/doomed') && store.get('HTTPRoute/default/newcomer'), 3000)
      expect(reflector.stats.expired).toBeGreaterThanOrEqual(1)
      expect(reflector.stats.lists).toBeGreaterThanOrEqual(2)
      expect(store.get('HTTPRoute/default/a')).toBeDefined()
      expect(logger.lines.some((l) => l.msg === 'kubernetes watch expired, relisting')).toBe(true)
      // and watching continues normally afterwards
      server.apply(httpRoute('after'))
      await waitFor('post-relist event', () => store.get('HTTPRoute/default/after'))
    })
  }

  test('bookmarks advance the resourceVersion, so a resume after compaction needs no relist', async () => {
    const { server, ingest, source } = await setup({ bookmarkIntervalMs: 50 })
    seed(server)
    await source.start(ingest)
    const reflector = source.reflectors.get('HTTPRoute')!
    const listedAt = Number(reflector.resourceVersion)
    // activity in other kinds moves the global resourceVersion past what HTTPRoute has seen
    for (let i = 0; i < 5; i++) server.apply(service(`other-${i}`))
    await waitFor('bookmark advanced rv', () => Number(reflector.resourceVersion) === server.resourceVersion, 2000)
    expect(Number(reflector.resourceVersion)).toBeGreaterThan(listedAt)
    expect(reflector.stats.bookmarks).toBeGreaterThan(0)
    server.compact()
    await server.dropWatches()
    server.apply(httpRoute('fresh'))
    await waitFor('event after resume', () => source.reflectors.get('HTTPRoute')!.stats.events > 0, 3000)
    expect(reflector.stats.expired).toBe(0)
    expect(reflector.stats.lists).toBe(1)
  })

  test('connection errors back off and recover once the server is back', async () => {
    const logger = recordingLogger()
    const { server, store, ingest, source } = await setup({}, { logger })
    seed(server)
    await source.start(ingest)
    await server.setUnavailable(true)
    await Bun.sleep(400)
    const failures = logger.lines.filter((l) => l.msg === 'kubernetes watch failed, retrying')
    expect(failures.length).toBeGreaterThan(0)
    // backoff grows: the HTTPRoute reflector waited longer each time (capped at maxMs 200 here)
    const delays = failures.filter((l) => l.fields?.kind === 'HTTPRoute').map((l) => Number(l.fields?.retryInMs))
    expect(delays.length).toBeGreaterThan(1)
    expect(delays.length).toBeLessThan(15)
    await server.setUnavailable(false)
    server.apply(httpRoute('back'))
    await waitFor('recovered', () => store.get('HTTPRoute/default/back'), 3000)
  })

  test('discovery skips kinds the cluster does not serve and finds v1alpha2-only routes', async () => {
    const resources = DEFAULT_RESOURCES.filter((r) => !['GRPCRoute', 'BackendTLSPolicy'].includes(r.kind)).map((r) =>
      r.kind === 'TLSRoute' ? { ...r, versions: ['v1alpha2'] } : r,
    )
    const logger = recordingLogger()
    const { server, store, ingest, source } = await setup({ resources }, { logger })
    server.apply({ apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'TLSRoute', metadata: { name: 't', namespace: 'default' }, spec: { parentRefs: [{ name: 'edge' }], rules: [] } })
    await source.start(ingest)
    expect(source.served.has('GRPCRoute')).toBe(false)
    expect(source.served.has('BackendTLSPolicy')).toBe(false)
    expect(source.served.get('TLSRoute')?.apiVersion).toBe('gateway.networking.k8s.io/v1alpha2')
    expect(store.get('TLSRoute/default/t')).toBeDefined()
    expect(logger.lines.find((l) => l.msg === 'kinds not served by the cluster, skipped')?.fields?.kinds).toBe('GRPCRoute,BackendTLSPolicy')
  })

  test('a cluster without the Gateway API still serves the core kinds', async () => {
    const resources = DEFAULT_RESOURCES.filter((r) => r.group !== 'gateway.networking.k8s.io')
    const { server, store, ingest, source } = await setup({ resources })
    server.apply(service('web'))
    await source.start(ingest)
    expect(source.served.has('Gateway')).toBe(false)
    expect(store.get('Service/default/web')).toBeDefined()
  })

  test('--watch-namespace limits namespaced kinds; cluster-scoped kinds stay cluster-wide', async () => {
    const { server, store, ingest, source } = await setup({}, { watchNamespace: 'team-a' })
    server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } })
    seed(server)
    server.apply(httpRoute('mine', 'team-a'))
    await source.start(ingest)
    expect(store.get('HTTPRoute/team-a/mine')).toBeDefined()
    expect(store.get('HTTPRoute/default/a')).toBeUndefined()
    expect(store.get('GatewayClass//portico')).toBeDefined()
    server.apply(httpRoute('other', 'default'))
    server.apply(httpRoute('mine2', 'team-a'))
    await waitFor('team-a route', () => store.get('HTTPRoute/team-a/mine2'))
    expect(store.get('HTTPRoute/default/other')).toBeUndefined()
  })

  test('in-cluster: service-account token and CA file, no NODE_EXTRA_CA_CERTS', async () => {
    const pki = generatePki()
    const server = startFakeApiServer({ auth: 'token', pki, token: 'sa-token-123' })
    cleanups.push(() => server.stop())
    const root = join(pki.dir, 'root')
    const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount')
    mkdirSync(sa, { recursive: true })
    writeFileSync(join(sa, 'ca.crt'), pki.caCert)
    writeFileSync(join(sa, 'token'), 'sa-token-123')
    writeFileSync(join(sa, 'namespace'), 'portico-system')
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT }
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1'
    process.env.KUBERNETES_SERVICE_PORT = String(server.port)
    const kc = new KubeConfig()
    kc.loadFromCluster(root)
    process.env.KUBERNETES_SERVICE_HOST = saved.host
    process.env.KUBERNETES_SERVICE_PORT = saved.port
    if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST
    if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT
    expect(kc.getCurrentCluster()?.server).toBe(`https://127.0.0.1:${server.port}`)
    server.apply(service('web'))
    const { store, ingest } = storeWithIngest()
    const source = new KubernetesSource({ kubeconfig: kc, logger: silentLogger })
    cleanups.push(() => source.stop())
    await source.start(ingest)
    expect(store.get('Service/default/web')).toBeDefined()
    expect(server.requests.length).toBeGreaterThan(0)
  })

  test('TLS is really verified: a kubeconfig with the wrong CA never syncs', async () => {
    const server = startFakeApiServer()
    cleanups.push(() => server.stop())
    const other = generatePki()
    const kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    kc.clusters = kc.clusters.map((c) => ({ ...c, caData: Buffer.from(other.caCert).toString('base64') }))
    const logger = recordingLogger()
    const { ingest } = storeWithIngest()
    const source = new KubernetesSource({ kubeconfig: kc, logger, backoff: { initialMs: 20, maxMs: 50 } })
    const started = source.start(ingest).then(() => 'synced')
    const outcome = await Promise.race([started, Bun.sleep(500).then(() => 'pending')])
    expect(outcome).toBe('pending')
    await source.stop()
    expect(logger.lines.some((l) => l.level === 'warn' && /certificate|self.signed|verify/i.test(String(l.fields?.error)))).toBe(true)
  })
})
