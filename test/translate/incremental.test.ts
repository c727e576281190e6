/**
 * The incremental paths must never change an output. Random (seeded) sequences of changes to a
 * ResourceStore (objects of every kind from the golden inputs added, removed and edited, plus
 * generated HTTPRoutes added and removed one at a time and in bulk) are rebuilt after each step
 * the way the controller does it (store.view(), one long-lived Translator, validate, compile with
 * one long-lived registry), and every output is compared with a rebuild from scratch:
 *   - store.view() lists  ≡ viewOf(store.all())            (same objects, same order)
 *   - Translator          ≡ translate(view, opts)           (IR and status, key order included)
 *   - validateSnapshot    ≡ on the fresh IR, and on one without pools (per-rule memo)
 *   - compile             ≡ on the fresh IR, fresh registry (per-rule and per-pool memo), and
 *     every runtime pool a compiled rule holds is the new plan's pool for that key, bound to
 *     the registry's current endpoint state.
 */
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { HttpFilter, Snapshot, WeightedBackend } from '../../src/ir/types.ts'
import { validateSnapshot } from '../../src/ir/validate.ts'
import { compile, type Plan, type RoutePlan } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import { keyOf, type K8sObject } from '../../src/store/kinds.ts'
import { ResourceStore, viewOf, type ResourceView } from '../../src/store/store.ts'
import { translate, Translator } from '../../src/translate/index.ts'
import { loadObjects } from '../golden/load.ts'

const OPTS = { controllerName: 'portico.dev/gateway-controller' }
const GOLDEN = join(import.meta.dir, '../golden')
const UNIVERSE: readonly K8sObject[] = readdirSync(GOLDEN)
  .filter((f) => f.endsWith('.in.yaml'))
  .sort()
  .flatMap((f) => loadObjects(readFileSync(join(GOLDEN, f), 'utf8')))

type Rand = () => number

function rng(seed: number): Rand {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!
const clone = <T>(v: T): T => structuredClone(v)

// ---------------------------------------------------------------- generated routes

let generated = 0

/**
 * An HTTPRoute on one of the current Gateways (or ListenerSets, when given), with values drawn
 * from small sets so that precedence ties are common.
 */
function generatedRoute(rand: Rand, gateways: readonly K8sObject[], listenerSets: readonly K8sObject[] = []): K8sObject {
  const gw = listenerSets.length && rand() < 0.35 ? pick(rand, listenerSets) : gateways.length ? pick(rand, gateways) : undefined
  const gwNs = gw?.metadata.namespace ?? 'default'
  const ns = rand() < 0.8 ? gwNs : pick(rand, ['default', 'other', 'team-a'])
  const listeners: any[] = Array.isArray(gw?.spec?.listeners) ? gw!.spec.listeners : []
  const parentRef = (): Record<string, unknown> => {
    const ref: Record<string, unknown> = { name: gw?.metadata.name ?? 'missing' }
    if (gw?.kind === 'ListenerSet') ref.kind = 'ListenerSet'
    if (ns !== gwNs || rand() < 0.3) ref.namespace = gwNs
    if (listeners.length && rand() < 0.3) ref.sectionName = pick(rand, listeners)?.name
    return ref
  }
  const parentRefs = [parentRef()]
  if (rand() < 0.15) parentRefs.push(rand() < 0.5 ? parentRef() : { ...parentRefs[0], port: pick(rand, [80, 443, 8080]) })
  const match = () => {
    const m: Record<string, unknown> = {}
    const type = pick(rand, ['Exact', 'PathPrefix', 'PathPrefix', 'RegularExpression'])
    m.path = { type, value: type === 'RegularExpression' ? pick(rand, ['/r/[0-9]+', '/api/.*']) : pick(rand, ['/', '/a', '/api', '/api/v1', '/b/c']) }
    if (rand() < 0.2) m.method = pick(rand, ['GET', 'post'])
    if (rand() < 0.2) m.headers = [{ name: pick(rand, ['x-a', 'X-B']), value: '1' }]
    if (rand() < 0.1) m.queryParams = [{ name: 'q', value: 'v' }]
    return m
  }
  const rules = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => {
    const rule: Record<string, unknown> = { matches: Array.from({ length: Math.floor(rand() * 3) }, match) }
    if (rand() < 0.9) rule.backendRefs = [{ name: pick(rand, ['web', 'api', 'echo', 'missing']), port: pick(rand, [80, 8080, 3000]), ...(rand() < 0.2 ? { weight: pick(rand, [0, 1, 5]) } : {}) }]
    if (rand() < 0.1) rule.filters = [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-gen', value: '1' }] } }]
    if (rand() < 0.05) rule.filters = [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'web', port: 8080 } } }]
    return rule
  })
  const metadata: Record<string, unknown> = { name: `gen-${generated++}`, namespace: ns }
  if (rand() < 0.7) metadata.creationTimestamp = pick(rand, ['2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z', '2023-06-01T00:00:00Z'])
  const hostnames = pick(rand, [[], [], ['a.example.com'], ['*.example.com'], ['a.example.com', 'b.example.com'], ['foo.com']])
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: metadata as unknown as K8sObject['metadata'], spec: { parentRefs, hostnames, rules } }
}

// ---------------------------------------------------------------- edits

/** A changed copy of `o` (the store replaces objects, it never mutates them). */
function edited(rand: Rand, o: K8sObject): K8sObject {
  const c = clone(o)
  const r = rand()
  if (r < 0.12) {
    // what our own status writes do in Kubernetes mode: translation must not care
    c.status = { conditions: [{ type: 'Accepted', status: pick(rand, ['True', 'False']) }] }
    c.metadata.resourceVersion = String(Math.floor(rand() * 1e6))
    return c
  }
  if (r < 0.22) {
    c.metadata.generation = (c.metadata.generation ?? 0) + 1
    return c
  }
  if (r < 0.3) {
    c.metadata.creationTimestamp = pick(rand, ['2020-01-01T00:00:00Z', '2030-01-01T00:00:00Z', undefined])
    return c
  }
  switch (c.kind) {
    case 'HTTPRoute': {
      const rule = c.spec?.rules?.[0]
      if (rule && rand() < 0.5) rule.matches = [{ path: { type: 'PathPrefix', value: pick(rand, ['/', '/x', '/api/v2']) } }]
      else if (typeof rule?.backendRefs?.[0] === 'object' && rule.backendRefs[0] !== null) rule.backendRefs[0].port = pick(rand, [80, 8080, 3000, 9999])
      else c.spec = { ...c.spec, hostnames: pick(rand, [[], ['a.example.com'], ['*.example.com']]) }
      return c
    }
    case 'TCPRoute':
    case 'TLSRoute':
    case 'UDPRoute': {
      const ref = c.spec?.rules?.[0]?.backendRefs?.[0]
      if (ref) ref.port = pick(rand, [80, 53, 5432, 9999])
      else c.spec = { ...c.spec, rules: [] }
      return c
    }
    case 'Service': {
      const port = c.spec?.ports?.[0]
      if (port && rand() < 0.5) port.port = pick(rand, [80, 8080, 3000])
      else if (port) port.appProtocol = pick(rand, ['kubernetes.io/h2c', 'kubernetes.io/ws', 'kubernetes.io/nonsense'])
      else c.spec = { ...c.spec, ports: [{ name: 'http', port: 80 }] }
      return c
    }
    case 'EndpointSlice': {
      c.endpoints = rand() < 0.5 ? [] : [{ addresses: [pick(rand, ['10.9.0.1', '10.9.0.2'])], conditions: { ready: rand() < 0.8 } }]
      return c
    }
    case 'Gateway': {
      const listeners = Array.isArray(c.spec?.listeners) ? c.spec.listeners : []
      if (rand() < 0.2) c.spec = { ...c.spec, allowedListeners: pick(rand, [undefined, { namespaces: { from: pick(rand, ['None', 'Same', 'All']) } }, { namespaces: { from: 'Selector', selector: { matchLabels: { 'shared-gateway': 'yes' } } } }]) }
      else if (listeners.length && rand() < 0.5) listeners[0].hostname = pick(rand, ['a.example.com', '*.example.com', undefined])
      else listeners.push({ name: `extra-${Math.floor(rand() * 3)}`, port: pick(rand, [80, 8081]), protocol: 'HTTP' })
      return c
    }
    case 'ListenerSet': {
      // a listener's hostname, port or protocol (conflicts come and go), or another parent
      const listeners = Array.isArray(c.spec?.listeners) ? c.spec.listeners : []
      const r2 = rand()
      if (listeners.length && r2 < 0.35) listeners[0].hostname = pick(rand, ['gw.example.com', 'first.example.com', '*.example.com', undefined])
      else if (listeners.length && r2 < 0.55) listeners[0].protocol = pick(rand, ['HTTP', 'TCP', 'UDP'])
      else if (r2 < 0.75) listeners.push({ name: `extra-${Math.floor(rand() * 3)}`, port: pick(rand, [8080, 8081, 9000]), protocol: 'HTTP', hostname: pick(rand, ['x.example.com', 'gw.example.com']) })
      else c.spec = { ...c.spec, parentRef: { name: pick(rand, ['edge', 'shared', 'same', 'all', 'gw', 'missing']), namespace: pick(rand, ['default', 'infra']) } }
      return c
    }
    case 'Namespace':
      c.metadata.labels = { ...(c.metadata.labels ?? {}), team: pick(rand, ['a', 'b']) }
      if (rand() < 0.5) c.metadata.labels['shared-gateway'] = pick(rand, ['yes', 'no'])
      return c
    case 'ReferenceGrant':
      c.spec = { ...c.spec, to: rand() < 0.5 ? [] : [{ group: '', kind: 'Service' }] }
      return c
    case 'ClientTrafficPolicy':
    case 'BackendTrafficPolicy':
    case 'SecurityPolicy': {
      // retarget (Gateway, listener, route, rule, missing), change a feature, or break the schema
      const r2 = rand()
      const spec = { ...(c.spec ?? {}) }
      if (r2 < 0.4) {
        const target: Record<string, unknown> = pick(rand, [
          { kind: 'Gateway', name: 'gw' },
          { kind: 'Gateway', name: 'gw', sectionName: pick(rand, ['http', 'admin', 'a', 'b', 'db', 'nope']) },
          { kind: 'HTTPRoute', name: pick(rand, ['web', 'ghost']) },
          { kind: 'TCPRoute', name: 'pg', sectionName: pick(rand, ['db', 'replica']) },
        ])
        delete spec.targetRef
        spec.targetRefs = [{ group: 'gateway.networking.k8s.io', ...target }]
      } else if (r2 < 0.7 && c.kind === 'ClientTrafficPolicy') {
        spec.headers = { requestID: pick(rand, ['Preserve', 'Generate', 'Disable']) }
        spec.timeout = { http: { idleTimeout: pick(rand, ['5s', '1m', '10s']) } }
      } else if (r2 < 0.85) spec.unknownField = true
      else spec.connection = { connectionLimit: { value: pick(rand, [10, 100]) } }
      c.spec = spec
      return c
    }
    default:
      c.metadata.labels = { ...(c.metadata.labels ?? {}), touched: String(Math.floor(rand() * 3)) }
      return c
  }
}

// ---------------------------------------------------------------- compiled plans

/** A comparable description of a plan; asserts on the way that compiled rules hold the plan's own pools. */
function describePlan(plan: Plan, registry: EndpointRegistry): unknown {
  const rule = (r: RoutePlan) => {
    const action = r.action
    const choices =
      action.kind === 'forward'
        ? action.choices.map((c) => {
            // a pool variant (BackendTrafficPolicy, "<pool>#<settings>") is built from the plan's pool of that key
            const base = c.pool?.key.split('#')[0]
            if (c.pool && base === c.pool.key) expect(plan.pools.get(c.pool.key)).toBe(c.pool)
            else if (c.pool) {
              const shared = plan.pools.get(base!)!
              expect(c.pool.members.length).toBe(shared.members.length)
              c.pool.members.forEach((m, i) => expect(m.state).toBe(shared.members[i]!.state))
            }
            return { weight: c.weight, pool: c.pool?.key, invalid: c.invalid, request: c.requestFilters.length, response: c.responseFilters.length }
          })
        : undefined
    return {
      id: r.id,
      ir: r.ir,
      request: r.requestFilters.length,
      response: r.responseFilters.length,
      action: action.kind === 'forward' ? { kind: action.kind, choices, cumulative: action.cumulative, totalWeight: action.totalWeight } : action.kind === 'respond' ? action : { kind: action.kind },
      timeouts: [r.requestTimeoutMs, r.backendTimeoutMs, r.timeoutDisabled],
      retry: r.retry && { codes: [...r.retry.codes], attempts: r.retry.attempts, backoffMs: r.retry.backoffMs },
      direct: [r.direct, r.directWebSocket],
    }
  }
  const table = (t: { rules: { rules: readonly RoutePlan[] } } | undefined) => t?.rules.rules.map(rule)
  return {
    revision: plan.revision,
    pools: [...plan.pools].map(([key, pool]) => {
      pool.members.forEach((m, i) => expect(m.state).toBe(registry.endpoint(pool.ir.endpoints[i]!.address, pool.ir.endpoints[i]!.port)))
      return { key, ir: pool.ir, members: pool.members.map((m) => m.origin), picker: pool.picker.constructor.name, tls: pool.tls && { serverName: pool.tls.serverName, ca: pool.tls.ca } }
    }),
    ports: [...plan.ports].map(([port, p]) => ({
      port,
      scheme: p.scheme,
      tls: p.tls,
      tlsFingerprint: p.tlsFingerprint,
      listeners: p.router.listeners.map((l) => ({
        id: l.ir.id,
        exact: [...l.exact].map(([name, vh]) => [name, table(vh)]),
        wildcards: [...l.wildcards].map(([name, vh]) => [name, table(vh)]),
        catchAll: table(l.catchAll),
      })),
    })),
  }
}

/** Backend targets and mirror filters in the snapshot, counted independently of validate.ts. */
function poolReferences(ir: Snapshot): number {
  const mirrors = (filters: readonly HttpFilter[]) => filters.filter((f) => f.type === 'RequestMirror').length
  const backends = (bs: readonly WeightedBackend[]) => bs.reduce((n, b) => n + (b.target ? 1 : 0) + mirrors(b.filters), 0)
  let n = 0
  for (const port of ir.http)
    for (const l of port.listeners)
      for (const vh of l.virtualHosts) for (const r of vh.rules) n += mirrors(r.filters) + (r.action.kind === 'forward' ? backends(r.action.backends) : 0)
  for (const port of ir.l4) for (const r of port.routes) n += backends(r.backends)
  return n
}

// ---------------------------------------------------------------- the harness

class Harness {
  readonly store = new ResourceStore()
  readonly translator = new Translator(OPTS)
  readonly registry = new EndpointRegistry()
  steps = 0

  objects(kind?: string): K8sObject[] {
    return this.store.all().filter((o) => kind === undefined || o.kind === kind)
  }

  /** One rebuild, checked against a rebuild from scratch. */
  check(): void {
    this.steps++
    const view = this.store.view()
    expectSameView(view, viewOf(this.store.all(), view.revision))
    const warm = this.translator.translate(view)
    const cold = translate(view, OPTS)
    expect(JSON.stringify(warm)).toBe(JSON.stringify(cold))
    expect(warm).toStrictEqual(cold)
    const problems = validateSnapshot(warm.ir)
    expect(problems).toEqual(validateSnapshot(cold.ir))
    // the per-rule memo still looks pools up in each snapshot: drop them all and compare with
    // copies of the rules the memo has never seen
    const poolless = { ...warm.ir, pools: {} }
    const undefinedPools = validateSnapshot(poolless).filter((p) => / pool \S+ is not defined$/.test(p))
    expect(undefinedPools.length).toBe(poolReferences(warm.ir))
    expect(validateSnapshot(poolless)).toEqual(validateSnapshot(structuredClone(poolless)))
    if (problems.length) return // the controller would not compile it either
    const fresh = new EndpointRegistry()
    expect(describePlan(compile(warm.ir, this.registry), this.registry)).toEqual(describePlan(compile(cold.ir, fresh), fresh))
  }
}

function expectSameView(a: ResourceView, b: ResourceView): void {
  expect(Object.keys(a)).toEqual(Object.keys(b))
  for (const k of Object.keys(a) as (keyof ResourceView)[]) {
    if (k === 'revision') continue
    const x = a[k] as readonly K8sObject[]
    const y = b[k] as readonly K8sObject[]
    expect(x.length).toBe(y.length)
    x.forEach((o, i) => expect(o === y[i]).toBe(true))
  }
}

/** One random step: 1-3 changes, then a checked rebuild. */
function step(h: Harness, rand: Rand): void {
  const changes = 1 + Math.floor(rand() * 3)
  for (let n = 0; n < changes; n++) {
    const r = rand()
    const current = h.objects()
    if (r < 0.22) {
      // an object from the golden inputs: new, or a different version of one we have
      const o = pick(rand, UNIVERSE)
      h.store.upsert(rand() < 0.5 ? o : clone(o))
    } else if (r < 0.4 && current.length) {
      h.store.delete(keyOf(pick(rand, current)))
    } else if (r < 0.62 && current.length) {
      // favour the kinds a route depends on, then routes
      const kinds = ['Service', 'EndpointSlice', 'Gateway', 'ListenerSet', 'ReferenceGrant', 'Namespace', 'BackendTLSPolicy', 'Secret', 'HTTPRoute', 'HTTPRoute', 'TCPRoute', 'TLSRoute']
      const ofKind = h.objects(pick(rand, kinds))
      h.store.upsert(edited(rand, pick(rand, ofKind.length ? ofKind : current)))
    } else if (r < 0.85) {
      h.store.upsert(generatedRoute(rand, h.objects('Gateway'), h.objects('ListenerSet')))
    } else if (r < 0.93) {
      // many at once: the full-sort paths
      const gateways = h.objects('Gateway')
      const sets = h.objects('ListenerSet')
      h.store.replaceAll([], Array.from({ length: 70 + Math.floor(rand() * 30) }, () => generatedRoute(rand, gateways, sets)))
    } else {
      const routes = h.objects('HTTPRoute')
      const gone = routes.filter(() => rand() < 0.6).map(keyOf)
      h.store.replaceAll(gone, [])
    }
  }
  h.check()
}

describe('incremental rebuild ≡ rebuild from scratch', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`random changes, seed ${seed}`, () => {
      const rand = rng(seed * 7919)
      const h = new Harness()
      // start from the objects of a few golden scenarios
      for (let i = 0; i < 3 + seed; i++) h.store.upsert(pick(rand, UNIVERSE))
      for (const o of UNIVERSE.filter((o) => o.kind === 'GatewayClass' || o.kind === 'Gateway').slice(0, 4)) h.store.upsert(o)
      h.check()
      for (let i = 0; i < 120; i++) step(h, rand)
      expect(h.steps).toBe(121)
    })
  }

  test('ListenerSets: sets, their Gateways and routes on both change in turn', () => {
    const rand = rng(1713)
    const h = new Harness()
    const scenarios = UNIVERSE.filter((o) => o.kind === 'ListenerSet' || o.kind === 'GatewayClass' || o.kind === 'Namespace' || o.kind === 'Service')
    for (const o of scenarios) h.store.upsert(o)
    // the Gateways that ListenerSets of the golden inputs name
    const parents = new Set(UNIVERSE.filter((o) => o.kind === 'ListenerSet').map((o) => `${o.spec?.parentRef?.namespace ?? o.metadata.namespace}/${o.spec?.parentRef?.name}`))
    for (const o of UNIVERSE.filter((o) => o.kind === 'Gateway' && parents.has(`${o.metadata.namespace}/${o.metadata.name}`))) h.store.upsert(o)
    h.check()
    for (let i = 0; i < 80; i++) {
      const r = rand()
      const sets = h.objects('ListenerSet')
      if (r < 0.3 && sets.length) h.store.upsert(edited(rand, pick(rand, sets)))
      else if (r < 0.4 && sets.length) h.store.delete(keyOf(pick(rand, sets)))
      else if (r < 0.5) h.store.upsert(pick(rand, UNIVERSE.filter((o) => o.kind === 'ListenerSet')))
      else if (r < 0.6) h.store.upsert(edited(rand, pick(rand, h.objects('Gateway'))))
      else if (r < 0.65) h.store.upsert(edited(rand, pick(rand, h.objects('Namespace'))))
      else h.store.upsert(generatedRoute(rand, h.objects('Gateway'), h.objects('ListenerSet')))
      h.check()
    }
    const status = h.translator.translate(h.store.view()).status
    expect(Object.keys(status).some((k) => k.startsWith('ListenerSet/'))).toBe(true)
  })

  test('route-only changes at scale reuse what did not change', () => {
    const rand = rng(42)
    const h = new Harness()
    for (const o of UNIVERSE.filter((o) => ['GatewayClass', 'Gateway', 'Service', 'EndpointSlice'].includes(o.kind))) h.store.upsert(o)
    const gateways = h.objects('Gateway')
    h.store.replaceAll([], Array.from({ length: 400 }, () => generatedRoute(rand, gateways)))
    h.check()
    const before = h.translator.translate(h.store.view())
    for (let i = 0; i < 30; i++) {
      const routes = h.objects('HTTPRoute')
      if (i % 3 === 0) h.store.delete(keyOf(pick(rand, routes)))
      else if (i % 3 === 1) h.store.upsert(edited(rand, pick(rand, routes)))
      else h.store.upsert(generatedRoute(rand, gateways))
      h.check()
    }
    // unchanged rules are the same objects (what lets validate and compile skip them)
    const after = h.translator.translate(h.store.view())
    const rules = (r: typeof before) => new Set(r.ir.http.flatMap((p) => p.listeners.flatMap((l) => l.virtualHosts.flatMap((v) => v.rules))))
    const was = rules(before)
    const kept = [...rules(after)].filter((r) => was.has(r))
    // 20 of the 30 steps changed or removed one route, of at most 4 rules (2 rules × 2 matches)
    expect(was.size).toBeGreaterThan(150)
    expect(kept.length).toBeGreaterThanOrEqual(was.size - 20 * 4)
  })

  test('hand-made views: two objects with one key, unsorted lists, the same object twice', () => {
    const routes = UNIVERSE.filter((o) => o.kind === 'HTTPRoute')
    const base = UNIVERSE.filter((o) => o.kind !== 'HTTPRoute')
    const translator = new Translator(OPTS)
    const views: ResourceView[] = [
      viewOf([...base, ...routes]),
      { ...viewOf([...base, ...routes]), httpRoutes: [...viewOf(routes).httpRoutes].reverse() },
      viewOf([...base, ...routes, ...routes.slice(0, 5)]),
      viewOf([...base, ...routes.slice(3)]),
      viewOf([...base, ...routes, ...routes.slice(0, 5).map((r) => ({ ...r, metadata: { ...r.metadata, creationTimestamp: '2000-01-01T00:00:00Z' } }))]),
      viewOf([...base, ...routes]),
    ]
    for (const view of views) expect(JSON.stringify(translator.translate(view))).toBe(JSON.stringify(translate(view, OPTS)))
  })
})
