/**
 * Incremental policy attachment (src/policy/attach.ts synced by the Translator) must never
 * change an output. Random (seeded) sequences of changes to a ResourceStore: routes added,
 * removed and edited (rule names, parents), policies of the three kinds added, removed,
 * retargeted (Gateway, listener, route, rule, missing targets), re-timed (precedence changes),
 * broken (schema) and touched (status only, generation), Gateways and Secrets and Services
 * edited. After every step one long-lived Translator is compared with translate() of the same
 * view: the IR and the status map (policy ancestors, conditions, key order included).
 */
import { describe, expect, test } from 'bun:test'
import { keyOf, type K8sObject } from '../../src/store/kinds.ts'
import { ResourceStore } from '../../src/store/store.ts'
import { translate, Translator } from '../../src/translate/index.ts'
import { loadObjects } from '../golden/load.ts'

const OPTS = { controllerName: 'portico.dev/gateway-controller' }
type Rand = () => number

function rng(seed: number): Rand {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}
const pick = <T,>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!

const BASE = loadObjects(`
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z" }
spec:
  gatewayClassName: portico
  listeners: [{ name: http, port: 80, protocol: HTTP }, { name: admin, port: 8080, protocol: HTTP }, { name: db, port: 5432, protocol: TCP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw2, namespace: default, creationTimestamp: "2024-01-02T00:00:00Z" }
spec:
  gatewayClassName: portico
  listeners: [{ name: http, port: 9090, protocol: HTTP }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: authz, namespace: default }
spec: { ports: [{ port: 9000 }] }
---
apiVersion: v1
kind: Secret
metadata: { name: api-keys, namespace: default }
stringData: { client-a: key-a }
`)

const ROUTES = ['a', 'b', 'c', 'd', 'e']
const TIMES = ['2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z', '2024-03-01T00:00:00Z', undefined]

function httpRoute(rand: Rand, name: string): K8sObject {
  const parents = pick(rand, [[{ name: 'gw' }], [{ name: 'gw' }], [{ name: 'gw2' }], [{ name: 'gw' }, { name: 'gw2' }], [{ name: 'gw', sectionName: 'admin' }], [{ name: 'missing' }]])
  const rules = Array.from({ length: 1 + Math.floor(rand() * 2) }, (_, i) => ({
    ...(rand() < 0.6 ? { name: pick(rand, ['r1', 'r2', 'r3']) + (i ? '-b' : '') } : {}),
    matches: [{ path: { type: 'PathPrefix', value: `/${name}/${i}` } }],
    backendRefs: [{ name: 'web', port: 80 }],
  }))
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: 'default', creationTimestamp: pick(rand, TIMES) } as K8sObject['metadata'], spec: { parentRefs: parents, rules } }
}

const tcpRoute = (): K8sObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1alpha2',
  kind: 'TCPRoute',
  metadata: { name: 'pg', namespace: 'default' },
  spec: { parentRefs: [{ name: 'gw', sectionName: 'db' }], rules: [{ name: 'db', backendRefs: [{ name: 'web', port: 80 }] }] },
})

function target(rand: Rand, kind: string): Record<string, unknown> {
  const g = { group: 'gateway.networking.k8s.io' }
  if (kind === 'ClientTrafficPolicy' || rand() < 0.2)
    return pick(rand, [
      { ...g, kind: 'Gateway', name: 'gw' },
      { ...g, kind: 'Gateway', name: 'gw', sectionName: pick(rand, ['http', 'admin', 'db', 'nope']) },
      { ...g, kind: 'Gateway', name: 'gw2' },
      { ...g, kind: 'Gateway', name: 'missing' },
    ])
  if (rand() < 0.1) return { ...g, kind: 'TCPRoute', name: 'pg', ...(rand() < 0.5 ? { sectionName: 'db' } : {}) }
  return { ...g, kind: 'HTTPRoute', name: pick(rand, [...ROUTES, 'ghost']), ...(rand() < 0.3 ? { sectionName: pick(rand, ['r1', 'r2', 'r1-b', 'nope']) } : {}) }
}

function features(rand: Rand, kind: string): Record<string, unknown> {
  switch (kind) {
    case 'ClientTrafficPolicy':
      return pick(rand, [
        { headers: { requestID: pick(rand, ['Preserve', 'Generate']) } },
        { timeout: { http: { idleTimeout: pick(rand, ['5s', '1m']) } } },
        { connection: { connectionLimit: { value: pick(rand, [10, 100]) } } },
        { clientIPDetection: { xForwardedFor: { numTrustedHops: 1 } }, headers: { requestID: 'Generate' } },
      ])
    case 'BackendTrafficPolicy':
      return pick(rand, [
        { retry: { numRetries: pick(rand, [1, 2, 3]) } },
        { loadBalancer: { type: pick(rand, ['RoundRobin', 'Random']) } },
        { retry: { numRetries: 2 }, circuitBreaker: { maxParallelRequests: 5 } },
        { proxyProtocol: { version: 'V1' } },
        { unknownField: true },
      ])
    default:
      return pick(rand, [
        { apiKeyAuth: { credentialRefs: [{ name: pick(rand, ['api-keys', 'api-keys', 'gone']) }], extractFrom: [{ headers: ['x-api-key'] }] } },
        { authorization: { defaultAction: 'Deny', rules: [{ name: 'lo', action: 'Allow', principal: { clientCIDRs: ['127.0.0.0/8'] } }] } },
        { extAuth: { http: { backendRef: { name: pick(rand, ['authz', 'nope']), port: 9000 } } } },
        { cors: { allowOrigins: ['https://a.example.com'] } },
      ])
  }
}

function policy(rand: Rand, kind: string, name: string): K8sObject {
  const targets = Array.from({ length: rand() < 0.25 ? 2 : 1 }, () => target(rand, kind))
  return {
    apiVersion: 'gateway.portico.dev/v1alpha1',
    kind,
    metadata: { name, namespace: 'default', generation: 1, creationTimestamp: pick(rand, TIMES) } as K8sObject['metadata'],
    spec: { targetRefs: targets, ...features(rand, kind) },
  }
}

/** A changed copy of a policy: status only, generation, retargeted, re-timed or new features. */
function editedPolicy(rand: Rand, o: K8sObject): K8sObject {
  const c = structuredClone(o)
  const r = rand()
  if (r < 0.15) {
    c.status = { ancestors: [] }
    c.metadata.resourceVersion = String(Math.floor(rand() * 1e6))
  } else if (r < 0.3) c.metadata.generation = (c.metadata.generation ?? 0) + 1
  else if (r < 0.45) c.metadata.creationTimestamp = pick(rand, TIMES)
  else if (r < 0.75) c.spec = { ...c.spec, targetRefs: [target(rand, c.kind)] }
  else c.spec = { targetRefs: c.spec?.targetRefs, ...features(rand, c.kind) }
  return c
}

function editedGateway(rand: Rand, o: K8sObject): K8sObject {
  const c = structuredClone(o)
  const listeners: Record<string, unknown>[] = c.spec.listeners
  if (rand() < 0.5 && listeners.length > 1) listeners.pop()
  else listeners.push({ name: pick(rand, ['admin', 'extra']), port: pick(rand, [8080, 8081]), protocol: 'HTTP' })
  return c
}

function step(rand: Rand, store: ResourceStore, n: number): void {
  const all = store.all()
  const ofKind = (...kinds: string[]) => all.filter((o) => kinds.includes(o.kind))
  const r = rand()
  if (r < 0.2) store.upsert(httpRoute(rand, pick(rand, ROUTES)))
  else if (r < 0.27) {
    const routes = ofKind('HTTPRoute', 'TCPRoute')
    if (routes.length) store.delete(keyOf(pick(rand, routes)))
  } else if (r < 0.32) store.upsert(tcpRoute())
  else if (r < 0.55) store.upsert(policy(rand, pick(rand, ['ClientTrafficPolicy', 'BackendTrafficPolicy', 'SecurityPolicy', 'BackendTrafficPolicy', 'SecurityPolicy']), `p${n % 9}`))
  else if (r < 0.75) {
    const policies = ofKind('ClientTrafficPolicy', 'BackendTrafficPolicy', 'SecurityPolicy')
    if (policies.length) store.upsert(editedPolicy(rand, pick(rand, policies)))
  } else if (r < 0.83) {
    const policies = ofKind('ClientTrafficPolicy', 'BackendTrafficPolicy', 'SecurityPolicy')
    if (policies.length) store.delete(keyOf(pick(rand, policies)))
  } else if (r < 0.89) store.upsert(editedGateway(rand, pick(rand, ofKind('Gateway'))))
  else if (r < 0.95) {
    // the Secret an apiKeyAuth reads: new key, removed, back
    const secret = store.get('Secret/default/api-keys')
    if (secret && rand() < 0.3) store.delete(keyOf(secret))
    else store.upsert({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'api-keys', namespace: 'default' }, stringData: { [`client-${n % 3}`]: `key-${n}` } } as K8sObject)
  } else {
    const svc = store.get('Service/default/authz')
    if (svc) store.delete(keyOf(svc))
    else store.upsert(BASE.find((o) => o.kind === 'Service' && o.metadata.name === 'authz')!)
  }
}

function expectSame(incremental: ReturnType<typeof translate>, fresh: ReturnType<typeof translate>, where: string): void {
  const a = JSON.stringify(incremental.ir)
  const b = JSON.stringify(fresh.ir)
  if (a !== b) expect({ where, ir: incremental.ir }).toEqual({ where, ir: fresh.ir })
  const s = JSON.stringify(incremental.status)
  const t = JSON.stringify(fresh.status)
  if (s !== t) expect({ where, status: incremental.status }).toEqual({ where, status: fresh.status })
  expect(s).toBe(t) // key order too
}

describe('incremental policy attachment ≡ translate() from scratch', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`random changes, seed ${seed}`, () => {
      const rand = rng(seed)
      const store = new ResourceStore()
      for (const o of BASE) store.upsert(o)
      for (const name of ROUTES.slice(0, 3)) store.upsert(httpRoute(rand, name))
      const translator = new Translator(OPTS)
      let policiesSeen = 0
      for (let n = 0; n < 120; n++) {
        step(rand, store, n)
        // sometimes two changes land in one rebuild (the controller coalesces)
        if (rand() < 0.2) step(rand, store, n + 1000)
        const view = store.view()
        const incremental = translator.translate(view)
        const fresh = translate(view, OPTS)
        expectSame(incremental, fresh, `seed ${seed}, step ${n}`)
        policiesSeen = Math.max(policiesSeen, Object.keys(fresh.status).filter((k) => k.includes('Policy/')).length)
      }
      // the sequence did exercise policies with status (not a vacuous comparison)
      expect(policiesSeen).toBeGreaterThan(2)
    })
  }

  test('a route whose policy changes is translated again; an unrelated route keeps its IR objects', () => {
    const store = new ResourceStore()
    for (const o of BASE) store.upsert(o)
    const rand = rng(42)
    store.upsert({ ...httpRoute(rand, 'a'), spec: { parentRefs: [{ name: 'gw' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/a' } }], backendRefs: [{ name: 'web', port: 80 }] }] } })
    store.upsert({ ...httpRoute(rand, 'b'), spec: { parentRefs: [{ name: 'gw' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/b' } }], backendRefs: [{ name: 'web', port: 80 }] }] } })
    const btp = (n: number): K8sObject => ({
      apiVersion: 'gateway.portico.dev/v1alpha1',
      kind: 'BackendTrafficPolicy',
      metadata: { name: 'retry-a', namespace: 'default' },
      spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'a' }], retry: { numRetries: n } },
    })
    store.upsert(btp(1))
    const translator = new Translator(OPTS)
    const rules = (r: ReturnType<typeof translate>) => r.ir.http[0]!.listeners[0]!.virtualHosts[0]!.rules
    const first = rules(translator.translate(store.view()))
    store.upsert(btp(3))
    const second = translator.translate(store.view())
    expectSame(second, translate(store.view(), OPTS), 'retry edited')
    const ruleOf = (rs: typeof first, path: string) => rs.find((r) => r.match.path?.value === path)!
    expect(ruleOf(rules(second), '/b')).toBe(ruleOf(first, '/b'))
    expect(ruleOf(rules(second), '/a')).not.toBe(ruleOf(first, '/a'))
    expect(JSON.stringify(ruleOf(first, '/a').policies)).toContain('"attempts":1')
    expect(JSON.stringify(ruleOf(rules(second), '/a').policies)).toContain('"attempts":3')
  })
})
