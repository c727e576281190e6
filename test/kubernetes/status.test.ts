/** Status write-back against the stand-in API server (which validates status like the Gateway API CRDs). */
import { afterEach, describe, expect, test } from 'bun:test'
import { KubeClient } from '../../src/sources/kubernetes/client.ts'
import { loadKubeConfig, transportFromKubeConfig } from '../../src/sources/kubernetes/connection.ts'
import { addressesFromService, KubernetesStatusSink, sameStatus } from '../../src/status/kubernetes.ts'
import { LeaseElector } from '../../src/status/leader.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import type { StatusMap } from '../../src/translate/types.ts'
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver/index.ts'
import { CONTROLLER, gateway, gatewayClass, httpRoute, recordingLogger, waitFor } from './helpers.ts'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function clientFor(server: FakeApiServer, userAgent = 'portico'): Promise<KubeClient> {
  return new KubeClient(transportFromKubeConfig(await loadKubeConfig({ kubeconfig: server.writeKubeconfig() })), userAgent)
}

function setup() {
  const server = startFakeApiServer()
  cleanups.push(() => server.stop())
  server.apply(gatewayClass())
  server.apply(gatewayClass('theirs', 'example.com/other'))
  server.apply(gateway())
  server.apply(httpRoute('a'))
  return server
}

const cond = (type: string, status: 'True' | 'False', reason: string, generation = 1, message = '') => ({ type, status, reason, message, observedGeneration: generation })

function computed(overrides: { accepted?: 'True' | 'False'; message?: string } = {}): StatusMap {
  return {
    'GatewayClass//portico': { conditions: [cond('Accepted', 'True', 'Accepted')] },
    'Gateway/default/edge': {
      conditions: [cond('Accepted', 'True', 'Accepted'), cond('Programmed', 'True', 'Programmed')],
      listeners: [{ name: 'http', attachedRoutes: 1, supportedKinds: [{ kind: 'HTTPRoute' }], conditions: [cond('Accepted', 'True', 'Accepted'), cond('Programmed', 'True', 'Programmed')] }],
    },
    'HTTPRoute/default/a': {
      parents: [
        {
          parentRef: { name: 'edge' },
          controllerName: CONTROLLER,
          conditions: [cond('Accepted', overrides.accepted ?? 'True', overrides.accepted === 'False' ? 'NotAllowedByListeners' : 'Accepted', 1, overrides.message ?? ''), cond('ResolvedRefs', 'True', 'ResolvedRefs')],
        },
      ],
    },
    // kinds without a status subresource are never written
    'Service/default/web': { whatever: true },
  }
}

const patches = (server: FakeApiServer, ua?: string) => server.requests.filter((r) => r.method === 'PATCH' && (!ua || r.userAgent === ua))

describe('KubernetesStatusSink', () => {
  test('writes valid status once, then only on change, keeping lastTransitionTime of unchanged conditions', async () => {
    const server = setup()
    let clock = new Date('2030-01-01T00:00:00Z')
    const sink = new KubernetesStatusSink({ client: await clientFor(server), controllerName: CONTROLLER, logger: silentLogger, now: () => clock })
    cleanups.push(() => sink.stop())
    sink.publish(computed())
    await sink.idle()
    expect(sink.stats.errors).toBe(0)
    expect(patches(server).map((r) => r.path)).toEqual([
      '/apis/gateway.networking.k8s.io/v1/gatewayclasses/portico/status',
      '/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/edge/status',
      '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/a/status',
    ])
    expect(patches(server).every((r) => r.contentType === 'application/merge-patch+json')).toBe(true)
    const route = server.getObject('HTTPRoute', 'default', 'a')
    expect(route.status.parents[0].conditions[0]).toMatchObject({ type: 'Accepted', status: 'True', lastTransitionTime: '2030-01-01T00:00:00Z' })
    expect(route.metadata.generation).toBe(1) // a status write is not a spec change
    // the same status again: nothing written, even by a fresh sink (it compares with the server)
    clock = new Date('2030-01-01T00:05:00Z')
    sink.publish(computed())
    await sink.idle()
    const fresh = new KubernetesStatusSink({ client: await clientFor(server), controllerName: CONTROLLER, logger: silentLogger, now: () => clock })
    cleanups.push(() => fresh.stop())
    fresh.publish(computed())
    await fresh.idle()
    expect(patches(server)).toHaveLength(3)
    expect(fresh.stats.unchanged).toBe(3)
    // a message change is written but is not a transition; a status change is
    fresh.publish(computed({ message: 'still fine' }))
    await fresh.idle()
    expect(patches(server)).toHaveLength(4)
    let accepted = server.getObject('HTTPRoute', 'default', 'a').status.parents[0].conditions[0]
    expect(accepted).toMatchObject({ message: 'still fine', lastTransitionTime: '2030-01-01T00:00:00Z' })
    clock = new Date('2030-01-01T00:10:00Z')
    fresh.publish(computed({ accepted: 'False' }))
    await fresh.idle()
    accepted = server.getObject('HTTPRoute', 'default', 'a').status.parents[0].conditions[0]
    expect(accepted).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners', lastTransitionTime: '2030-01-01T00:10:00Z' })
    expect(server.getObject('HTTPRoute', 'default', 'a').status.parents[0].conditions[1].lastTransitionTime).toBe('2030-01-01T00:00:00Z')
  })

  test("never touches objects without computed status, and keeps other controllers' route entries", async () => {
    const server = setup()
    const theirs = { parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'other-gw' }, controllerName: 'example.com/other', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'theirs', lastTransitionTime: '2020-01-01T00:00:00Z' }] }
    server.setStatus('HTTPRoute', 'default', 'a', { parents: [theirs] })
    server.setStatus('GatewayClass', undefined, 'theirs', { conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'other', lastTransitionTime: '2020-01-01T00:00:00Z' }] })
    const before = server.getObject('GatewayClass', undefined, 'theirs')
    const sink = new KubernetesStatusSink({ client: await clientFor(server), controllerName: CONTROLLER, logger: silentLogger })
    cleanups.push(() => sink.stop())
    sink.publish(computed())
    await sink.idle()
    expect(server.requests.some((r) => r.path.includes('/theirs'))).toBe(false)
    expect(server.getObject('GatewayClass', undefined, 'theirs')).toEqual(before)
    const parents = server.getObject('HTTPRoute', 'default', 'a').status.parents
    expect(parents).toHaveLength(2)
    expect(parents[0]).toEqual(theirs)
    expect(parents[1].controllerName).toBe(CONTROLLER)
    // translation stops giving the route a status: our entry goes, theirs stays
    const { ['HTTPRoute/default/a']: _, ...rest } = computed()
    sink.publish(rest)
    await sink.idle()
    expect(server.getObject('HTTPRoute', 'default', 'a').status.parents).toEqual([theirs])
  })

  test('a concurrent write by another controller causes a 409 and a re-merge, not a lost entry', async () => {
    const server = setup()
    const client = await clientFor(server)
    const realRequest = client.request.bind(client)
    let raced = false
    client.request = (async (method: string, path: string, opts?: any) => {
      if (method === 'PATCH' && path.includes('httproutes') && !raced) {
        raced = true
        const current = server.getObject('HTTPRoute', 'default', 'a')
        server.setStatus('HTTPRoute', 'default', 'a', {
          parents: [...(current.status?.parents ?? []), { parentRef: { name: 'x' }, controllerName: 'example.com/racer', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: '2020-01-01T00:00:00Z' }] }],
        })
      }
      return realRequest(method, path, opts)
    }) as typeof client.request
    const sink = new KubernetesStatusSink({ client, controllerName: CONTROLLER, logger: silentLogger })
    cleanups.push(() => sink.stop())
    sink.publish(computed())
    await sink.idle()
    expect(sink.stats.conflicts).toBe(1)
    const controllers = server.getObject('HTTPRoute', 'default', 'a').status.parents.map((p: any) => p.controllerName)
    expect(controllers.sort()).toEqual(['example.com/racer', CONTROLLER])
  })

  test('failures are retried with backoff until the server takes the write', async () => {
    const server = setup()
    const logger = recordingLogger()
    const sink = new KubernetesStatusSink({ client: await clientFor(server), controllerName: CONTROLLER, logger, backoff: { initialMs: 50, maxMs: 200 } })
    cleanups.push(() => sink.stop())
    await server.setUnavailable(true)
    sink.publish(computed())
    await Bun.sleep(300)
    expect(logger.lines.filter((l) => l.msg === 'status write failed, will retry').length).toBeGreaterThan(1)
    expect(server.getObject('Gateway', 'default', 'edge').status).toBeUndefined()
    await server.setUnavailable(false)
    await waitFor('status written after recovery', () => server.getObject('HTTPRoute', 'default', 'a').status?.parents?.length === 1, 2000)
  })

  test('status the CRD schema rejects gets a 422 from the server and is retried, not spun on', async () => {
    const server = setup()
    const logger = recordingLogger()
    const sink = new KubernetesStatusSink({ client: await clientFor(server), controllerName: CONTROLLER, logger, backoff: { initialMs: 100, maxMs: 1000 } })
    cleanups.push(() => sink.stop())
    sink.publish({ 'Gateway/default/edge': { conditions: [cond('Accepted', 'True', 'not a valid reason')] } })
    const writeFailures = () => logger.lines.filter((l) => l.msg === 'status write failed, will retry')
    // Wait for the first refusal however slow the machine is, then give a spinning sink 400 ms to show itself:
    // with a 100 ms initial backoff that doubles, at most 3 more attempts fit in that time.
    for (let waited = 0; writeFailures().length === 0 && waited < 10_000; waited += 20) await Bun.sleep(20)
    await Bun.sleep(400)
    const failures = writeFailures()
    expect(failures.length).toBeGreaterThanOrEqual(1)
    expect(failures.length).toBeLessThan(5)
    expect(String(failures[0]!.fields?.error)).toContain('422')
  })

  test('fills Gateway addresses from a Service when translation has none', async () => {
    const server = setup()
    const svc = { spec: { clusterIP: '10.0.0.7' }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.9' }] } } }
    expect(addressesFromService({ spec: { clusterIP: '10.0.0.7' } })).toEqual([{ type: 'IPAddress', value: '10.0.0.7' }])
    const sink = new KubernetesStatusSink({ client: await clientFor(server), controllerName: CONTROLLER, logger: silentLogger, gatewayAddresses: () => addressesFromService(svc) })
    cleanups.push(() => sink.stop())
    sink.publish(computed())
    await sink.idle()
    expect(server.getObject('Gateway', 'default', 'edge').status.addresses).toEqual([{ type: 'IPAddress', value: '203.0.113.9' }])
  })

  test('sameStatus ignores lastTransitionTime and server-side defaults but not removed fields', () => {
    const c = { type: 'Accepted', status: 'True', reason: 'Accepted', message: '' }
    expect(sameStatus({ conditions: [c] }, { conditions: [{ ...c, lastTransitionTime: 'x' }] })).toBe(true)
    expect(sameStatus({ conditions: [c] }, { conditions: [{ ...c, status: 'False' }] })).toBe(false)
    expect(sameStatus({ conditions: [c] }, { conditions: [c, c] })).toBe(false)
    expect(sameStatus({ conditions: [c] }, { conditions: [c], addresses: [] })).toBe(false)
  })
})

describe('leader election', () => {
  test('two replicas: exactly one writes status; when it stops, the other takes over', async () => {
    const server = setup()
    const replicas = await Promise.all(
      ['replica-a', 'replica-b'].map(async (identity) => {
        const client = await clientFor(server, identity)
        const elector = new LeaseElector({ client, namespace: 'default', name: 'portico-status', identity, logger: silentLogger, leaseDurationSeconds: 1.5, renewDeadlineSeconds: 1, retryPeriodSeconds: 0.2 })
        const sink = new KubernetesStatusSink({ client, controllerName: CONTROLLER, logger: silentLogger, leadership: elector })
        cleanups.push(() => sink.stop())
        cleanups.push(() => elector.stop())
        return { identity, elector, sink }
      }),
    )
    for (const r of replicas) r.elector.start()
    await waitFor('a leader', () => replicas.some((r) => r.elector.isLeader), 3000)
    await Bun.sleep(500) // several renew rounds: still exactly one
    expect(replicas.filter((r) => r.elector.isLeader)).toHaveLength(1)
    for (const r of replicas) r.sink.publish(computed())
    await Promise.all(replicas.map((r) => r.sink.idle()))
    const leader = replicas.find((r) => r.elector.isLeader)!
    const follower = replicas.find((r) => r !== leader)!
    expect(patches(server, leader.identity)).toHaveLength(3)
    expect(patches(server, follower.identity)).toHaveLength(0)
    expect(server.getObject('Lease', 'default', 'portico-status').spec).toMatchObject({ holderIdentity: leader.identity, leaseDurationSeconds: 1.5 })
    expect(server.getObject('Lease', 'default', 'portico-status').spec.renewTime).toMatch(/\.\d{6}Z$/)
    // the leader stops (rolling update): it releases the lease and the follower takes over fast
    await leader.elector.stop()
    leader.sink.stop()
    const handover = await waitFor('follower leads', () => follower.elector.isLeader, 2000)
    console.log(`leader handover after release: ${handover.toFixed(0)} ms`)
    follower.sink.publish(computed({ accepted: 'False' }))
    await waitFor('new leader wrote', () => server.getObject('HTTPRoute', 'default', 'a').status.parents[0].conditions[0].status === 'False', 2000)
    expect(patches(server, follower.identity).length).toBeGreaterThan(0)
    expect(server.getObject('Lease', 'default', 'portico-status').spec.leaseTransitions).toBe(1)
  })

  test('a partitioned leader steps down before anyone else takes over: never two leaders', async () => {
    const server = setup()
    const mk = async (identity: string) => {
      const client = await clientFor(server, identity)
      const elector = new LeaseElector({ client, namespace: 'default', name: 'lease', identity, logger: silentLogger, leaseDurationSeconds: 1, renewDeadlineSeconds: 0.6, retryPeriodSeconds: 0.1 })
      cleanups.push(() => elector.stop())
      return { client, elector }
    }
    const a = await mk('a')
    a.elector.start()
    await waitFor('a leads', () => a.elector.isLeader, 2000)
    const b = await mk('b')
    b.elector.start()
    await Bun.sleep(400)
    expect(b.elector.isLeader).toBe(false) // a keeps renewing
    // a loses the API server (a network partition): its requests fail, b's do not
    a.client.request = (async () => {
      throw new Error('network unreachable')
    }) as typeof a.client.request
    let overlap = false
    const started = performance.now()
    let aDown = 0
    await waitFor('b takes over', () => {
      if (a.elector.isLeader && b.elector.isLeader) overlap = true
      if (!a.elector.isLeader && !aDown) aDown = performance.now() - started
      return b.elector.isLeader
    }, 3000)
    const bUp = performance.now() - started
    expect(overlap).toBe(false)
    expect(aDown).toBeGreaterThan(0)
    expect(aDown).toBeLessThan(bUp)
    console.log(`partition: old leader stepped down after ${aDown.toFixed(0)} ms, new leader after ${bUp.toFixed(0)} ms`)
    expect(server.getObject('Lease', 'default', 'lease').spec.holderIdentity).toBe('b')
  })
})
