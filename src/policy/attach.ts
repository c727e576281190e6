/**
 * Policy attachment (GEP-713) for every policy CRD: targetRefs → Gateway / listener / route /
 * rule, precedence, and each policy's status.ancestors.
 *
 * - A policy attaches only to targets in its own namespace. A target Gateway of another
 *   controller is not ours to report on; a missing one is TargetNotFound (ancestorRef: the
 *   Gateway named), a missing route too (ancestorRef: the route named).
 * - Per policy kind and target (Gateway, Gateway+listener, route, route+rule) one policy holds
 *   it: the oldest (creationTimestamp, then namespace/name). A newer one on the same target is
 *   Accepted=False/Conflicted there and contributes nothing to it.
 * - Features merge by name: rule > route > listener > Gateway. The more specific policy's feature
 *   replaces the less specific one's, and the replaced policy gets `Overridden: True` naming what
 *   replaced it and where (Envoy Gateway's Overridden condition; users were surprised by silent
 *   overrides, envoyproxy/gateway#8781).
 * - Connection settings belong to a port, which several listeners may share: they must agree per
 *   setting; when they do not, the port keeps the Gateway-wide value (from policies on whole
 *   Gateways) if that agrees, else the default, and every policy whose value is not used gets
 *   `Conflicted: True` saying which setting and port.
 * - A policy that fails its schema, or sets a field Portico does not support yet, is
 *   Accepted=False/Invalid with the reasons, contributes nothing, and touches nothing else.
 *
 * The index depends only on policies and Gateways (the translator's "world"), so the Translator
 * builds it once per world; route-dependent parts of status (does the route exist, which
 * Gateways are its parents, which rule names it has) are computed on every translation, from
 * the few routes policies name.
 */
import type { ConnectionSettings, PolicyIr } from './kind.ts'
import { POLICY_CRDS, type PolicyKind } from './crds.ts'
import { validate } from './schema.ts'
import { GATEWAY_API_GROUP, targetRefsOf, type TargetRef } from './targets.ts'
import { policyIr, TRANSLATORS, type Feature } from './translators.ts'
import { findByKey, translateContext } from './translate-context.ts'
import type { BackendEffect, Backends } from '../translate/backends.ts'
import { condition } from '../status/conditions.ts'
import { keyOf, type K8sObject } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import type { GatewayState, ListenerState } from '../translate/gateway.ts'
import type { Condition, StatusMap } from '../translate/types.ts'
import { KongIndex } from '../kong/index.ts'

const MAX_ANCESTORS = 16

interface Entry {
  readonly policy: K8sObject
  readonly kind: PolicyKind
  readonly namespace: string
  readonly name: string
  readonly created: number
  readonly generation?: number
  /** Why the policy is not accepted anywhere (schema errors, unsupported fields). */
  readonly invalid?: string
  readonly features: readonly Feature[]
  readonly targets: readonly TargetRef[]
}

/** One feature as merged at some level, with the policy and the ancestor it came through. */
interface Winner {
  readonly entry: Entry
  readonly feature: Feature
  readonly ancestor: string
  readonly level: 'gateway' | 'listener' | 'route' | 'rule'
}

interface AncestorState {
  readonly ref: Record<string, unknown>
  accepted: Condition
  readonly overridden: Set<string>
  readonly conflicted: Set<string>
}

/** What a route target resolved to in the index (route existence is checked at status time). */
interface RouteClaim {
  readonly entry: Entry
  readonly target: TargetRef
  /** Set when another policy of the same kind holds the same route/rule, or the feature cannot apply there. */
  readonly problem?: { readonly reason: string; readonly message: string }
  /** Invalid, but its (fail-closed) features apply: the target answers 500. */
  readonly closes?: boolean
}

interface RouteAttachments {
  readonly route: Map<string, Winner>
  readonly rules: Map<string, Map<string, Winner>>
}

const ROUTE_LISTS: Readonly<Record<string, 'httpRoutes' | 'grpcRoutes' | 'tcpRoutes' | 'tlsRoutes' | 'udpRoutes'>> = {
  HTTPRoute: 'httpRoutes',
  GRPCRoute: 'grpcRoutes',
  TCPRoute: 'tcpRoutes',
  TLSRoute: 'tlsRoutes',
  UDPRoute: 'udpRoutes',
}

const REASON = { Accepted: 'Accepted', Invalid: 'Invalid', TargetNotFound: 'TargetNotFound', Conflicted: 'Conflicted', Overridden: 'Overridden' } as const

const timestamp = (v: unknown) => {
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t
}
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
const who = (e: Entry) => `${e.kind} ${e.namespace}/${e.name}`
const gatewayAncestor = (ns: string, name: string, section?: string) => `Gateway/${ns}/${name}/${section ?? ''}`

function ancestorRef(kind: string, namespace: string, name: string, sectionName?: string): Record<string, unknown> {
  return { group: GATEWAY_API_GROUP, kind, namespace, name, ...(sectionName !== undefined ? { sectionName } : {}) }
}

/** Reads, validates and translates one policy object. Never throws. */
function entryOf(kind: PolicyKind, policy: K8sObject, view: ResourceView, backends: Backends | undefined, effects: BackendEffect[]): Entry {
  const entry = translateEntry(kind, policy, view, backends, effects)
  if (!entry.invalid || !TRANSLATORS[kind].failClosed) return entry
  // fail closed: the policy's targets answer 500 (its status says why)
  const spec = { policy: `${kind} ${entry.namespace}/${entry.name}` }
  return { ...entry, features: [{ scope: 'request', name: 'policyRejected', spec }] }
}

function translateEntry(kind: PolicyKind, policy: K8sObject, view: ResourceView, backends: Backends | undefined, effects: BackendEffect[]): Entry {
  const namespace = policy.metadata.namespace ?? 'default'
  const base = {
    policy,
    kind,
    namespace,
    name: policy.metadata.name,
    created: timestamp(policy.metadata.creationTimestamp),
    ...(typeof policy.metadata.generation === 'number' ? { generation: policy.metadata.generation } : {}),
  }
  const spec = policy.spec
  const targets = spec && typeof spec === 'object' && !Array.isArray(spec) ? targetRefsOf(spec) : []
  const t = TRANSLATORS[kind]
  try {
    if (spec === undefined || spec === null) return { ...base, targets, features: [], invalid: 'spec is required' }
    const problems = validate(t.schema, spec, 'spec')
    const reasons = [...problems.errors, ...problems.unsupported.map((p) => `${p} is not supported yet`)]
    if (reasons.length) return { ...base, targets, features: [], invalid: reasons.join('; ') }
    const features = t.features(spec, translateContext(view, kind, namespace, backends, effects))
    if (typeof features === 'string') return { ...base, targets, features: [], invalid: features }
    return { ...base, targets, features }
  } catch (e) {
    return { ...base, targets, features: [], invalid: `internal error translating this policy: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** Why a feature cannot apply through a target of this kind (undefined: it can). */
function unsupportedOn(f: Feature, targetKind: string): string | undefined {
  if (f.scope === 'l4route') return targetKind === 'TCPRoute' || targetKind === 'TLSRoute' ? undefined : `${f.name} applies to TCPRoute and TLSRoute targets only`
  if (f.scope === 'connection') return targetKind === 'Gateway' ? undefined : `${f.name} applies to Gateway targets only`
  // a gRPC call is an HTTP/2 request: every request feature applies to GRPCRoute as to HTTPRoute
  if (targetKind === 'Gateway' || targetKind === 'HTTPRoute' || targetKind === 'GRPCRoute') return undefined
  // BackendTrafficPolicy backend features reach the pools of TCPRoute and TLSRoute rules too
  // (UDPRoute: load balancing only); everything else acts on HTTP requests.
  if (targetKind === 'TCPRoute' || targetKind === 'TLSRoute') return (L4_FEATURES as readonly string[]).includes(f.name) ? undefined : `${f.name} acts on HTTP requests only: it applies to Gateway and HTTPRoute targets, not to ${targetKind}`
  if (targetKind === 'UDPRoute' && f.name !== 'loadBalancer' && (L4_FEATURES as readonly string[]).includes(f.name)) return `${f.name} is not supported for UDPRoute yet`
  return targetKind === 'UDPRoute' && f.name === 'loadBalancer' ? undefined : `${f.name} acts on HTTP requests only: it applies to Gateway and HTTPRoute targets, not to ${targetKind}`
}

/** Why a feature cannot apply, as status says it ("yet" unless the message says it is for good or for now). */
const misfitMessage = (m: string) => (/ yet\b|HTTP requests only/.test(m) ? m : `${m} (not supported yet)`)

/** Request features that also configure the backends of L4 routes (TCPRoute, TLSRoute; UDPRoute: loadBalancer). */
export const L4_FEATURES = ['loadBalancer', 'healthCheck', 'circuitBreaker'] as const

/** The backend features of merged request features that apply to an L4 route of this protocol. */
export function l4BackendPolicies(policies: readonly PolicyIr[] | undefined, udp: boolean): readonly PolicyIr[] | undefined {
  const out = policies?.filter((p) => (udp ? p.name === 'loadBalancer' : (L4_FEATURES as readonly string[]).includes(p.name)))
  return out?.length ? out : undefined
}

/**
 * A BackendTrafficPolicy on one TCP, TLS or UDP listener: its request features must be ones
 * that reach L4 routes (retry, compression, rate limits act on HTTP requests only).
 */
function l4ListenerMisfit(e: Entry, g: GatewayState, section: string | undefined): string | undefined {
  if (section === undefined || e.kind !== 'BackendTrafficPolicy') return undefined
  const l = g.listeners.find((x) => x.name === section)
  const routeKind = l?.protocol === 'TCP' ? 'TCPRoute' : l?.protocol === 'TLS' ? 'TLSRoute' : l?.protocol === 'UDP' ? 'UDPRoute' : undefined
  if (!routeKind) return undefined
  const f = e.features.find((f) => f.scope === 'request' && unsupportedOn(f, routeKind) !== undefined)
  if (!f) return undefined
  return (L4_FEATURES as readonly string[]).includes(f.name) ? `${f.name} is not supported for ${l!.protocol} listeners yet (listener ${section})` : `${f.name} applies to HTTP requests only; listener ${section} is ${l!.protocol}`
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** The connection settings one feature contributes on a port of this kind. */
const settingsOf = (f: Feature, http: boolean): ConnectionSettings | undefined => (f.scope === 'connection' ? (http ? f.http : f.l4) : undefined)

const CONNECTION_FIELDS: readonly (keyof ConnectionSettings)[] = ['proxyProtocol', 'maxConnections', 'idleTimeoutMs', 'requestReceivedTimeoutMs', 'tls', 'lateResponseHeaders']
const FIELD_NAMES: Record<keyof ConnectionSettings, (http: boolean) => string> = {
  proxyProtocol: () => 'proxyProtocol',
  maxConnections: () => 'connection.connectionLimit',
  idleTimeoutMs: (http) => (http ? 'timeout.http.idleTimeout' : 'timeout.tcp.idleTimeout'),
  requestReceivedTimeoutMs: () => 'timeout.http.requestReceivedTimeout',
  tls: () => 'tls',
  lateResponseHeaders: () => 'headers.lateResponseHeaders',
}

export class PolicyIndex {
  readonly #entries: Entry[] = []
  /** Gateway targets: ancestor key → per entry the Accepted condition there. */
  readonly #gatewayResults = new Map<Entry, Map<string, AncestorState>>()
  readonly #routeClaims = new Map<string, RouteClaim[]>()
  readonly #routes = new Map<string, RouteAttachments>()
  /** Request and connection features per listener, merged (listener beats Gateway). */
  readonly #listeners = new Map<ListenerState, Map<string, Winner>>()
  /** The same from Gateway-wide policies only (the fallback when a port's listeners disagree). */
  readonly #gatewayWide = new Map<ListenerState, Map<string, Winner>>()
  readonly #listenerIr = new Map<ListenerState, readonly PolicyIr[] | undefined>()
  readonly #routeIr = new Map<string, readonly PolicyIr[] | undefined>()
  readonly #httpPorts = new Map<number, ConnectionSettings>()
  readonly #l4Ports = new Map<string, ConnectionSettings>()
  /** Overridden / Conflicted messages known from policies and Gateways alone. */
  readonly #notes = new Map<Entry, Map<string, { overridden: Set<string>; conflicted: Set<string> }>>()

  /**
   * The index for one world. Total: if attaching throws (a bug meeting odd input), no policy
   * applies and routes are served as without policies, rather than nothing being served.
   */
  static build(view: ResourceView, gateways: readonly GatewayState[], programmed: readonly ListenerState[], backends?: Backends): PolicyIndex {
    try {
      return new PolicyIndex(view, gateways, programmed, true, backends)
    } catch {
      return new PolicyIndex(view, gateways, programmed, false, undefined)
    }
  }

  /**
   * Pools the policies call (ext-auth Services): recorded while translating them, to be added
   * to the translation's pool usage once (the Translator: once per world).
   */
  readonly backendEffects: BackendEffect[] = []

  /** Kong's KongPlugins and KongConsumers (src/kong): the second configuration surface onto the same features. */
  readonly kong: KongIndex | undefined

  private constructor(view: ResourceView, gateways: readonly GatewayState[], programmed: readonly ListenerState[], withPolicies: boolean, backends: Backends | undefined) {
    if (withPolicies) for (const crd of POLICY_CRDS) for (const p of view[crd.view]) this.#entries.push(entryOf(crd.kind, p, view, backends, this.backendEffects))
    this.kong = withPolicies ? KongIndex.build(view) : undefined
    this.#entries.sort((a, b) => a.created - b.created || cmp(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`) || cmp(a.kind, b.kind))
    const ours = new Map(gateways.map((g) => [g.key, g]))
    const allGateways = new Set(view.gateways.map((g) => `${g.metadata.namespace ?? 'default'}/${g.metadata.name}`))
    // who holds each target: policy kind + target → the oldest entry
    const held = new Map<string, Entry>()
    const gatewayWinners = new Map<string, Entry[]>() // "ns/name#section" → holders, oldest first
    for (const e of this.#entries) {
      const results = new Map<string, AncestorState>()
      this.#gatewayResults.set(e, results)
      for (const t of e.targets) {
        if (t.kind !== 'Gateway') {
          this.#claimRoute(e, t, held)
          continue
        }
        const gwKey = `${e.namespace}/${t.name}`
        const g = ours.get(gwKey)
        const anc = gatewayAncestor(e.namespace, t.name, t.sectionName)
        const state = (accepted: Condition): AncestorState => ({ ref: ancestorRef('Gateway', e.namespace, t.name, t.sectionName), accepted, overridden: new Set(), conflicted: new Set() })
        const cond = (status: 'True' | 'False', reason: string, message: string) => condition('Accepted', status, reason, message, e.generation)
        if (!g) {
          // another controller's Gateway is not ours to report on
          if (!allGateways.has(gwKey)) {
            const elsewhere = view.gateways.find((o) => o.metadata.name === t.name)
            const hint = elsewhere ? ` (a policy attaches only to targets in its own namespace; Gateway ${t.name} is in namespace ${elsewhere.metadata.namespace})` : ''
            results.set(anc, state(cond('False', REASON.TargetNotFound, `Gateway ${gwKey} not found${hint}`)))
          }
          continue
        }
        if (e.invalid && e.features.length === 0) {
          results.set(anc, state(cond('False', REASON.Invalid, e.invalid)))
          continue
        }
        if (t.sectionName !== undefined && !g.listeners.some((l) => l.name === t.sectionName)) {
          results.set(anc, state(cond('False', REASON.TargetNotFound, `Gateway ${gwKey} has no listener named ${t.sectionName}`)))
          continue
        }
        const misfit = e.features.map((f) => unsupportedOn(f, 'Gateway')).find((m) => m !== undefined) ?? l4ListenerMisfit(e, g, t.sectionName)
        if (misfit) {
          results.set(anc, state(cond('False', REASON.Invalid, misfitMessage(misfit))))
          continue
        }
        const claim = `${e.kind}|${gwKey}#${t.sectionName ?? ''}`
        const holder = held.get(claim)
        if (holder && holder !== e) {
          const what = t.sectionName !== undefined ? `listener ${t.sectionName} of Gateway ${gwKey}` : `Gateway ${gwKey}`
          results.set(anc, state(cond('False', REASON.Conflicted, `${who(holder)} (older) already targets ${what}`)))
          continue
        }
        held.set(claim, e)
        // an invalid fail-closed policy holds its target (which answers 500) and says why
        results.set(anc, state(e.invalid ? cond('False', REASON.Invalid, e.invalid) : cond('True', REASON.Accepted, 'Policy has been accepted.')))
        const w = gatewayWinners.get(`${gwKey}#${t.sectionName ?? ''}`) ?? []
        if (!w.includes(e)) w.push(e)
        gatewayWinners.set(`${gwKey}#${t.sectionName ?? ''}`, w)
      }
    }

    // Gateway, then listener: merged per listener
    for (const g of gateways) {
      const [ns, name] = [g.key.slice(0, g.key.indexOf('/')), g.key.slice(g.key.indexOf('/') + 1)]
      const wide = new Map<string, Winner>()
      for (const e of gatewayWinners.get(`${g.key}#`) ?? [])
        for (const f of e.features) if (!wide.has(f.name)) wide.set(f.name, { entry: e, feature: f, ancestor: gatewayAncestor(ns, name), level: 'gateway' })
      for (const l of g.listeners) {
        const merged = new Map(wide)
        for (const e of gatewayWinners.get(`${g.key}#${l.name}`) ?? [])
          for (const f of e.features) {
            const prev = merged.get(f.name)
            if (prev?.level === 'listener') continue // two kinds with one feature name: the older keeps it
            if (prev && prev.entry !== e) this.#note(prev.entry, prev.ancestor).overridden.add(`${f.name} on listener ${l.name} by ${who(e)}`)
            merged.set(f.name, { entry: e, feature: f, ancestor: gatewayAncestor(ns, name, l.name), level: 'listener' })
          }
        this.#listeners.set(l, merged)
        this.#gatewayWide.set(l, wide)
      }
      // listeners a ListenerSet adds take the Gateway-wide policies (a set cannot be targeted yet)
      for (const s of g.listenerSets ?? []) for (const l of s.listeners) {
        this.#listeners.set(l, new Map(wide))
        this.#gatewayWide.set(l, wide)
      }
    }
    this.#connectionSettings(programmed)

    // routes and rules: merged per route, rule-level kept apart (rule names are checked per route)
    for (const [routeKey, claims] of this.#routeClaims) {
      const att: RouteAttachments = { route: new Map(), rules: new Map() }
      const [kind, ns, name] = routeKey.split('/') as [string, string, string]
      for (const c of claims) {
        if (c.problem && !c.closes) continue
        const level = c.target.sectionName === undefined ? 'route' : 'rule'
        const into = level === 'route' ? att.route : (att.rules.get(c.target.sectionName!) ?? att.rules.set(c.target.sectionName!, new Map()).get(c.target.sectionName!)!)
        for (const f of c.entry.features) if (!into.has(f.name)) into.set(f.name, { entry: c.entry, feature: f, ancestor: `${kind}/${ns}/${name}`, level })
      }
      this.#routes.set(routeKey, att)
    }
  }

  #claimRoute(e: Entry, t: TargetRef, held: Map<string, Entry>): void {
    const routeKey = `${t.kind}/${e.namespace}/${t.name}`
    const claims = this.#routeClaims.get(routeKey) ?? []
    this.#routeClaims.set(routeKey, claims)
    let problem: RouteClaim['problem']
    let closes = false
    if (e.invalid) {
      problem = { reason: REASON.Invalid, message: e.invalid }
      const claim = `${e.kind}|${routeKey}#${t.sectionName ?? ''}`
      const holder = held.get(claim)
      if (e.features.length > 0 && (!holder || holder === e)) {
        held.set(claim, e)
        closes = true
      }
    } else if (!TRANSLATORS[e.kind].targetKinds.includes(t.kind)) problem = { reason: REASON.Invalid, message: `${t.kind} targets are not supported yet` }
    else {
      const misfit = e.features.map((f) => unsupportedOn(f, t.kind)).find((m) => m !== undefined)
      if (misfit) problem = { reason: REASON.Invalid, message: misfitMessage(misfit) }
      else {
        const claim = `${e.kind}|${routeKey}#${t.sectionName ?? ''}`
        const holder = held.get(claim)
        if (holder && holder !== e) {
          const what = t.sectionName !== undefined ? `rule ${t.sectionName} of ${t.kind} ${e.namespace}/${t.name}` : `${t.kind} ${e.namespace}/${t.name}`
          problem = { reason: REASON.Conflicted, message: `${who(holder)} (older) already targets ${what}` }
        } else held.set(claim, e)
      }
    }
    claims.push({ entry: e, target: t, ...(problem ? { problem } : {}), ...(closes ? { closes } : {}) })
  }

  #note(e: Entry, ancestor: string) {
    const byAncestor = this.#notes.get(e) ?? this.#notes.set(e, new Map()).get(e)!
    return byAncestor.get(ancestor) ?? byAncestor.set(ancestor, { overridden: new Set(), conflicted: new Set() }).get(ancestor)!
  }

  /** Per port, the settings all its listeners agree on (see the module comment for disagreement). */
  #connectionSettings(programmed: readonly ListenerState[]): void {
    const http = new Map<number, ListenerState[]>()
    const l4 = new Map<string, ListenerState[]>()
    for (const l of programmed) {
      if (l.protocol === 'HTTP' || l.protocol === 'HTTPS') http.set(l.port, [...(http.get(l.port) ?? []), l])
      else if (l.protocol === 'TCP' || l.protocol === 'TLS') l4.set(`${l.protocol}/${l.port}`, [...(l4.get(`${l.protocol}/${l.port}`) ?? []), l])
    }
    for (const [port, ls] of http) {
      const s = this.#portSettings(ls, true, `port ${port}`)
      if (s) this.#httpPorts.set(port, s)
    }
    for (const [key, ls] of l4) {
      const s = this.#portSettings(ls, false, `port ${key.slice(key.indexOf('/') + 1)}`)
      if (s) this.#l4Ports.set(key, s)
    }
  }

  #portSettings(listeners: readonly ListenerState[], http: boolean, where: string): ConnectionSettings | undefined {
    const valueOf = (merged: Map<string, Winner> | undefined, field: keyof ConnectionSettings): { value: unknown; winner?: Winner } => {
      for (const w of merged?.values() ?? []) {
        const s = settingsOf(w.feature, http)
        if (s && s[field] !== undefined) return { value: s[field], winner: w }
      }
      return { value: undefined }
    }
    const out: Mutable<ConnectionSettings> = {}
    for (const field of CONNECTION_FIELDS) {
      const full = listeners.map((l) => valueOf(this.#listeners.get(l), field))
      const same = (vs: { value: unknown }[]) => vs.every((v) => JSON.stringify(v.value) === JSON.stringify(vs[0]!.value))
      let chosen: unknown
      if (same(full)) chosen = full[0]!.value
      else {
        const wide = listeners.map((l) => valueOf(this.#gatewayWide.get(l), field))
        chosen = same(wide) ? wide[0]!.value : undefined
        const names = listeners.map((l) => l.name).join(', ')
        const keeps = chosen === undefined ? 'the port uses the default' : 'the port keeps the Gateway-wide value'
        for (const v of full)
          if (v.winner && JSON.stringify(v.value) !== JSON.stringify(chosen))
            this.#note(v.winner.entry, v.winner.ancestor).conflicted.add(`${FIELD_NAMES[field](http)} differs between the listeners on ${where} (${names}); ${keeps}`)
      }
      if (chosen !== undefined) (out as Record<string, unknown>)[field] = chosen
    }
    return Object.keys(out).length ? out : undefined
  }

  // ---------------------------------------------------------------- what the IR reads

  /** Request features of a listener (Gateway and listener policies merged), or undefined. */
  listenerPolicies(l: ListenerState): readonly PolicyIr[] | undefined {
    if (this.#listenerIr.has(l)) return this.#listenerIr.get(l)
    const ir = toIr(this.#listeners.get(l)?.values())
    this.#listenerIr.set(l, ir)
    return ir
  }

  httpPortConnection(port: number): ConnectionSettings | undefined {
    return this.#httpPorts.get(port)
  }

  l4PortConnection(protocol: string, port: number): ConnectionSettings | undefined {
    return this.#l4Ports.get(`${protocol}/${port}`)
  }

  /** Request features of one rule of a route (route and rule policies merged), or undefined. */
  rulePolicies(route: K8sObject, ruleName: string | undefined): readonly PolicyIr[] | undefined {
    const routeKey = keyOf(route)
    const att = this.#routes.get(routeKey)
    if (!att) return undefined
    const memo = `${routeKey}#${ruleName ?? ''}`
    if (this.#routeIr.has(memo)) return this.#routeIr.get(memo)
    const merged = new Map(att.route)
    if (ruleName !== undefined) for (const [n, w] of att.rules.get(ruleName) ?? []) merged.set(n, w)
    const ir = toIr(merged.values())
    this.#routeIr.set(memo, ir)
    return ir
  }

  /** BackendTrafficPolicy proxyProtocol for one rule of a TCPRoute/TLSRoute. */
  l4ProxyProtocol(route: K8sObject, ruleName: string | undefined): 'V1' | 'V2' | undefined {
    const att = this.#routes.get(keyOf(route))
    if (!att) return undefined
    const w = (ruleName !== undefined ? att.rules.get(ruleName)?.get('proxyProtocol') : undefined) ?? att.route.get('proxyProtocol')
    return w?.feature.scope === 'l4route' ? w.feature.proxyProtocol : undefined
  }

  // ---------------------------------------------------------------- status

  /**
   * Writes status.ancestors of every policy we have something to say about. Reads routes only
   * by key (the routes policies name), so its cost follows the number of policies.
   */
  writeStatus(view: ResourceView, gateways: ReadonlyMap<string, GatewayState>, controllerName: string, status: StatusMap): void {
    this.kong?.writeStatus(status)
    const routeInfo = new Map<string, { route: K8sObject; parents: string[]; rules: Set<string> } | null>()
    const lookup = (routeKey: string) => {
      if (routeInfo.has(routeKey)) return routeInfo.get(routeKey)!
      const kind = routeKey.slice(0, routeKey.indexOf('/'))
      const list = ROUTE_LISTS[kind] ? view[ROUTE_LISTS[kind]] : undefined
      const route = list ? findByKey(list, routeKey) : undefined
      const info = route ? { route, parents: parentGateways(route, gateways), rules: ruleNames(route) } : null
      routeInfo.set(routeKey, info)
      return info
    }

    const byEntry = new Map<Entry, Map<string, AncestorState>>()
    const ancestorsOf = (e: Entry) => byEntry.get(e) ?? byEntry.set(e, new Map()).get(e)!
    for (const [e, results] of this.#gatewayResults) {
      const mine = ancestorsOf(e)
      for (const [k, s] of results) mine.set(k, { ref: s.ref, accepted: s.accepted, overridden: new Set(), conflicted: new Set() })
    }
    const addRouteAncestors = (e: Entry, routeKey: string, target: TargetRef, accepted: Condition) => {
      const info = lookup(routeKey)
      const mine = ancestorsOf(e)
      if (!info) {
        const c = accepted.status === 'True' || accepted.reason === REASON.Conflicted ? condition('Accepted', 'False', REASON.TargetNotFound, `${target.kind} ${e.namespace}/${target.name} not found`, e.generation) : accepted
        mine.set(routeKey, { ref: ancestorRef(target.kind, e.namespace, target.name), accepted: c, overridden: new Set(), conflicted: new Set() })
        return
      }
      let c = accepted
      if (c.status === 'True' && target.sectionName !== undefined && !info.rules.has(target.sectionName))
        c = condition('Accepted', 'False', REASON.TargetNotFound, `${target.kind} ${e.namespace}/${target.name} has no rule named ${target.sectionName}`, e.generation)
      for (const g of info.parents) {
        const [ns, name] = g.split('/') as [string, string]
        const k = gatewayAncestor(ns, name)
        const prev = mine.get(k)
        // one ancestor for several targets behind the same Gateway: a problem is not hidden by a success
        if (!prev || (prev.accepted.status === 'True' && c.status === 'False'))
          mine.set(k, { ref: ancestorRef('Gateway', ns, name), accepted: c, overridden: prev?.overridden ?? new Set(), conflicted: prev?.conflicted ?? new Set() })
      }
    }
    for (const [routeKey, claims] of this.#routeClaims)
      for (const c of claims) {
        const accepted = c.problem
          ? condition('Accepted', 'False', c.problem.reason, c.problem.message, c.entry.generation)
          : condition('Accepted', 'True', REASON.Accepted, 'Policy has been accepted.', c.entry.generation)
        addRouteAncestors(c.entry, routeKey, c.target, accepted)
      }

    // Overridden from routes: a rule's feature over its route's, a route's over its Gateways'
    const overriddenBy = (w: Winner, parents: readonly string[], message: string) => {
      const mine = ancestorsOf(w.entry)
      const keys = w.level === 'route' || w.level === 'rule' ? parents.map((g) => gatewayAncestor(...(g.split('/') as [string, string]))) : [w.ancestor]
      for (const k of keys) mine.get(k)?.overridden.add(message)
    }
    for (const [routeKey, att] of this.#routes) {
      const info = lookup(routeKey)
      if (!info) continue
      const where = `${routeKey.slice(0, routeKey.indexOf('/'))} ${routeKey.slice(routeKey.indexOf('/') + 1)}`
      const active: Winner[] = [...att.route.values()]
      for (const [rule, features] of att.rules) {
        if (!info.rules.has(rule)) continue
        for (const [n, w] of features) {
          active.push(w)
          const routeLevel = att.route.get(n)
          if (routeLevel && routeLevel.entry !== w.entry) overriddenBy(routeLevel, info.parents, `${n} on rule ${rule} of ${where} by ${who(w.entry)}`)
        }
      }
      for (const w of active)
        for (const g of w.feature.scope === 'request' ? info.parents : []) {
          const gw = gateways.get(g)
          for (const l of gw?.listeners ?? []) {
            const lw = this.#listeners.get(l)?.get(w.feature.name)
            if (lw && lw.feature.scope === 'request' && lw.entry !== w.entry) overriddenBy(lw, [], `${w.feature.name} on ${where} by ${who(w.entry)}`)
          }
        }
    }
    for (const [e, byAncestor] of this.#notes)
      for (const [k, n] of byAncestor) {
        const a = ancestorsOf(e).get(k)
        if (!a) continue
        for (const m of n.overridden) a.overridden.add(m)
        for (const m of n.conflicted) a.conflicted.add(m)
      }

    for (const [e, ancestors] of byEntry) {
      if (ancestors.size === 0) continue
      const list = [...ancestors.entries()]
        .sort(([a], [b]) => cmp(a, b))
        .slice(0, MAX_ANCESTORS)
        .map(([, a]) => {
          const conditions: Condition[] = [a.accepted]
          if (a.accepted.status === 'True' && a.overridden.size)
            conditions.push(condition('Overridden', 'True', REASON.Overridden, `This policy is being overridden by more specific policies: ${[...a.overridden].sort().join('; ')}`, e.generation))
          if (a.accepted.status === 'True' && a.conflicted.size) conditions.push(condition('Conflicted', 'True', REASON.Conflicted, [...a.conflicted].sort().join('; '), e.generation))
          return { ancestorRef: a.ref, controllerName, conditions }
        })
      status[`${e.kind}/${e.namespace}/${e.name}`] = { ancestors: list }
    }
  }
}

function toIr(winners: Iterable<Winner> | undefined): readonly PolicyIr[] | undefined {
  const out: PolicyIr[] = []
  for (const w of winners ?? []) if (w.feature.scope === 'request') out.push(policyIr(w.entry.kind, w.entry.namespace, w.entry.name, w.feature))
  return out.length ? out.sort((a, b) => cmp(a.name, b.name)) : undefined
}


/** "ns/name" of our Gateways a route names in its parentRefs. */
function parentGateways(route: K8sObject, gateways: ReadonlyMap<string, GatewayState>): string[] {
  const ns = route.metadata.namespace ?? 'default'
  const out = new Set<string>()
  for (const ref of Array.isArray(route.spec?.parentRefs) ? route.spec.parentRefs : []) {
    if (!ref || typeof ref !== 'object' || typeof ref.name !== 'string') continue
    if ((ref.group ?? GATEWAY_API_GROUP) !== GATEWAY_API_GROUP || (ref.kind ?? 'Gateway') !== 'Gateway') continue
    const key = `${typeof ref.namespace === 'string' ? ref.namespace : ns}/${ref.name}`
    if (gateways.has(key)) out.add(key)
  }
  return [...out].sort(cmp)
}

function ruleNames(route: K8sObject): Set<string> {
  const names = new Set<string>()
  for (const r of Array.isArray(route.spec?.rules) ? route.spec.rules : []) if (r && typeof r.name === 'string') names.add(r.name)
  return names
}
