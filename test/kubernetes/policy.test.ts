/**
 * Policy CRDs in Kubernetes mode against the stand-in API server: a ClientTrafficPolicy is
 * listed and watched like the Gateway API kinds, applied to the IR, and its status.ancestors is
 * written back through the status writer (and rewritten when the policy turns invalid).
 */
import { afterEach, expect, test } from 'bun:test'
import { KubeClient } from '../../src/sources/kubernetes/client.ts'
import { loadKubeConfig, transportFromKubeConfig } from '../../src/sources/kubernetes/connection.ts'
import { KubernetesSource } from '../../src/sources/kubernetes/index.ts'
import { KubernetesStatusSink } from '../../src/status/kubernetes.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { Translator } from '../../src/translate/index.ts'
import { DEFAULT_RESOURCES, startFakeApiServer } from '../support/fake-apiserver/index.ts'
import { CONTROLLER, gateway, gatewayClass, httpRoute, service, storeWithIngest, waitFor } from './helpers.ts'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const ctp = (spec: Record<string, unknown>) => ({
  apiVersion: 'gateway.portico.dev/v1alpha1',
  kind: 'ClientTrafficPolicy',
  metadata: { name: 'edge-clients', namespace: 'default' },
  spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], ...spec },
})

test('a ClientTrafficPolicy is watched, applied and its status written back', async () => {
  const server = startFakeApiServer({ bookmarkIntervalMs: 200 })
  cleanups.push(() => server.stop())
  server.apply(gatewayClass())
  server.apply(gateway())
  server.apply(httpRoute('a', 'default', '/a'))
  server.apply(service('web'))
  server.apply(ctp({ headers: { requestID: 'PreserveOrGenerate' }, timeout: { http: { idleTimeout: '30s' } } }))

  const { store, ingest } = storeWithIngest()
  const source = new KubernetesSource({ kubeconfig: server.writeKubeconfig(), logger: silentLogger, backoff: { initialMs: 20, maxMs: 200 } })
  cleanups.push(() => source.stop())
  await source.start(ingest)
  expect(source.served.get('ClientTrafficPolicy')?.apiVersion).toBe('gateway.portico.dev/v1alpha1')
  expect(store.get('ClientTrafficPolicy/default/edge-clients')).toBeDefined()

  const client = new KubeClient(transportFromKubeConfig(await loadKubeConfig({ kubeconfig: server.writeKubeconfig() })), 'portico')
  const sink = new KubernetesStatusSink({ client, controllerName: CONTROLLER, logger: silentLogger, resources: source.served })
  cleanups.push(() => sink.stop())
  const translator = new Translator({ controllerName: CONTROLLER })
  const rebuild = async () => {
    const result = translator.translate(store.view())
    sink.publish(result.status)
    await sink.idle()
    return result
  }

  const first = await rebuild()
  const port = first.ir.http[0]!
  expect(port.connection).toEqual({ idleTimeoutMs: 30_000 })
  expect(port.listeners[0]!.policies).toEqual([{ name: 'requestID', id: 'clienttrafficpolicy/default/edge-clients#requestID', spec: { action: 'PreserveOrGenerate' } }])
  const written = server.getObject('ClientTrafficPolicy', 'default', 'edge-clients')
  expect(written.status.ancestors).toHaveLength(1)
  expect(written.status.ancestors[0]).toMatchObject({
    ancestorRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'default', name: 'edge' },
    controllerName: CONTROLLER,
    conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted' }],
  })
  expect(typeof written.status.ancestors[0].conditions[0].lastTransitionTime).toBe('string')

  // an edit that Portico cannot honour: the policy says why, the route keeps serving
  server.apply(ctp({ headers: { requestID: 'PreserveOrGenerate' }, tcpKeepalive: { probes: 3 } }))
  await waitFor('edited policy', () => store.get('ClientTrafficPolicy/default/edge-clients')?.spec.tcpKeepalive)
  const second = await rebuild()
  expect(second.ir.http[0]!.listeners[0]!.policies).toBeUndefined()
  expect(second.ir.http[0]!.listeners[0]!.virtualHosts[0]!.rules).toHaveLength(1)
  const invalid = server.getObject('ClientTrafficPolicy', 'default', 'edge-clients').status.ancestors[0].conditions[0]
  expect(invalid).toMatchObject({ type: 'Accepted', status: 'False', reason: 'Invalid', message: 'spec.tcpKeepalive is not supported yet' })

  server.remove('ClientTrafficPolicy', 'default', 'edge-clients')
  await waitFor('policy deleted', () => !store.get('ClientTrafficPolicy/default/edge-clients'))
  const third = await rebuild()
  expect(third.ir.http[0]!.connection).toBeUndefined()
})

test('a cluster without the Portico CRDs: the policy kinds are skipped, the rest is watched', async () => {
  const server = startFakeApiServer({ resources: DEFAULT_RESOURCES.filter((r) => r.group !== 'gateway.portico.dev') })
  cleanups.push(() => server.stop())
  server.apply(gatewayClass())
  const { store, ingest } = storeWithIngest()
  const source = new KubernetesSource({ kubeconfig: server.writeKubeconfig(), logger: silentLogger, backoff: { initialMs: 20, maxMs: 200 } })
  cleanups.push(() => source.stop())
  await source.start(ingest)
  expect(source.served.has('ClientTrafficPolicy')).toBe(false)
  expect(store.get('GatewayClass//portico')).toBeDefined()
})
