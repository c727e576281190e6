/**
 * ListenerSet in Kubernetes mode against the stand-in API server: discovered and listed like
 * the other kinds, translated with its Gateway, and its status (and the Gateway's
 * attachedListenerSets) written to the status subresource the way the CRD validates it.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { KubeClient } from '../../src/sources/kubernetes/client.ts'
import { loadKubeConfig, transportFromKubeConfig } from '../../src/sources/kubernetes/connection.ts'
import { discoverResources } from '../../src/sources/kubernetes/discovery.ts'
import { KubernetesStatusSink } from '../../src/status/kubernetes.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { viewOf } from '../../src/store/store.ts'
import { translate } from '../../src/translate/index.ts'
import { startFakeApiServer } from '../support/fake-apiserver/index.ts'
import { CONTROLLER, gatewayClass, httpRoute, service } from './helpers.ts'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: 'edge', namespace: 'default' },
  spec: { gatewayClassName: 'portico', allowedListeners: { namespaces: { from: 'Same' } }, listeners: [{ name: 'http', port: 8080, protocol: 'HTTP', hostname: 'edge.example.com' }] },
}
const listenerSet = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'ListenerSet',
  metadata: { name: 'team', namespace: 'default' },
  spec: { parentRef: { name: 'edge' }, listeners: [{ name: 'team', port: 8080, protocol: 'HTTP', hostname: 'team.example.com' }] },
}

describe('ListenerSet in Kubernetes mode', () => {
  test('discovered, translated, status written for the set and the Gateway', async () => {
    const server = startFakeApiServer()
    cleanups.push(() => server.stop())
    server.apply(gatewayClass())
    server.apply(gateway)
    server.apply(listenerSet)
    server.apply(service('web'))
    const route = httpRoute('on-set')
    route.spec.parentRefs = [{ kind: 'ListenerSet', name: 'team' } as any]
    server.apply(route)
    const client = new KubeClient(transportFromKubeConfig(await loadKubeConfig({ kubeconfig: server.writeKubeconfig() })), 'portico')
    const served = await discoverResources(client)
    expect(served.get('ListenerSet')).toMatchObject({ plural: 'listenersets' })

    const objects = ['GatewayClass', 'Gateway', 'ListenerSet', 'HTTPRoute', 'Service'].flatMap((k) => server.listObjects(k))
    const { status } = translate(viewOf(objects as any), { controllerName: CONTROLLER })
    const sink = new KubernetesStatusSink({ client, controllerName: CONTROLLER, logger: silentLogger })
    cleanups.push(() => sink.stop())
    sink.publish(status)
    await sink.idle()
    expect(sink.stats.errors).toBe(0)

    const ls = server.getObject('ListenerSet', 'default', 'team')
    expect(ls.status.conditions.map((c: any) => [c.type, c.status, c.reason])).toEqual([
      ['Accepted', 'True', 'Accepted'],
      ['Programmed', 'True', 'Programmed'],
    ])
    expect(ls.status.listeners[0]).toMatchObject({ name: 'team', attachedRoutes: 1 })
    expect(ls.status.listeners[0].supportedKinds).toEqual([
      { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' },
      { group: 'gateway.networking.k8s.io', kind: 'GRPCRoute' },
    ])
    const gw = server.getObject('Gateway', 'default', 'edge')
    expect(gw.status.attachedListenerSets).toBe(1)
    expect(gw.status.conditions.find((c: any) => c.type === 'AttachedListenerSets')).toMatchObject({ status: 'True', reason: 'ListenerSetsAttached' })
    const r = server.getObject('HTTPRoute', 'default', 'on-set')
    expect(r.status.parents[0]).toMatchObject({ parentRef: { kind: 'ListenerSet', name: 'team' }, controllerName: CONTROLLER })
    expect(r.status.parents[0].conditions[0]).toMatchObject({ type: 'Accepted', status: 'True' })
  })
})
