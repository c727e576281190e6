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
 * Incremental (for the Translator, which keeps one index per world and calls `sync` with every
 * view): the cost of a change follows the policies and routes it touches, not how many there are.
 *  - Each policy object is translated once into an Entry (entry.ts), kept while the object is
 *    unchanged (unchanged.ts sameObject); across worlds too, while what its translation read
 *    (Secrets, ConfigMaps, grants; never when it resolved a Service) is unchanged.
 *  - Targets are indexed: route key → the policies naming that route (a RouteGroup). A change
 *    to a policy recomputes the groups of its old and new targets only; a route whose merged
 *    features changed is handed back to the Translator to be translated again.
 *  - The Gateway side (gateway-attach.ts) is rebuilt whole when a policy with a Gateway target
 *    changes; routes report overriding Gateway-level features, so their reports are redone only
 *    when the Gateway-level request-feature winners changed.
 *  - Status: each route group contributes conditions and Overridden messages to the policies
 *    it involves; a policy's status is recomputed only when its own contributions changed.
 * translate() builds the same index from scratch (build); test/policy/attach-incremental.test.ts
 * holds the two to the same results over random change sequences.
 */
import type { ConnectionSettings, PolicyIr } from './kind.ts'
import { POLICY_CRDS, type PolicyKind } from './crds.ts'
import { GATEWAY_API_GROUP, type TargetRef } from './targets.ts'
import { TRANSLATORS } from './translators.ts'
import { findByKey, sameReads } from './translate-context.ts'
import { cmp, entryOf, entryOrder, misfitMessage, statusKeyOf, unsupportedOn, who, L4_FEATURES, type Entry } from './entry.ts'
import { ancestorRef, gatewayAncestor, GatewayAttachment, REASON, toIr, type AncestorState, type Winner } from './gateway-attach.ts'
import type { BackendEffect, Backends } from '../translate/backends.ts'
import { condition } from '../status/conditions.ts'
import { keyOf, type K8sObject } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import type { GatewayState, ListenerState } from '../translate/gateway.ts'
import { SortedSet } from '../translate/sorted-set.ts'
import { sameObject } from '../translate/unchanged.ts'
import type { Condition, StatusMap } from '../translate/types.ts'
import { KongIndex } from '../kong/index.ts'

export { L4_FEATURES } from './entry.ts'

const MAX_ANCESTORS = 16

/** One target of a policy naming a route (or one of its rules), as resolved in its group. */
interface RouteClaim {
  readonly entry: Entry
  readonly target: TargetRef
  /** The target's position in the policy's targetRefs (status reports targets in that order). */
  readonly index: number
  /** Set when another policy of the same kind holds the same route/rule, or the feature cannot apply there. */
  readonly problem?: { readonly reason: string; readonly message: string }
  /** Invalid, but its (fail-closed) features apply: the target answers 500. */
  readonly closes?: boolean
}

interface RouteAttachments {
  readonly route: ReadonlyMap<string, Winner>
  readonly rules: ReadonlyMap<string, ReadonlyMap<string, Winner>>
}

/** What one route adds to one policy's status. */
interface Contribution {
  /** Ancestors from the policy's targets on this route: `replace` sets the ancestor, else a problem is not hidden by a success. */
  readonly claims: { readonly index: number; readonly ancestor: string; readonly ref: Record<string, unknown>; readonly accepted: Condition; readonly replace: boolean }[]
  readonly overridden: { readonly ancestor: string; readonly message: string }[]
}

/** The policies naming one route, and what they make of it. */
interface RouteGroup {
  readonly key: string
  /** Oldest first (entryOrder). */
  readonly entries: Entry[]
  claims: readonly RouteClaim[]
  att: RouteAttachments
  /** rulePolicies results by rule name, while `att` stays the same. */
  readonly ir: Map<string, readonly PolicyIr[] | undefined>
  /** By policy status key. */
  contributions: ReadonlyMap<string, Contribution>
}

const NO_ATTACHMENTS: RouteAttachments = { route: new Map(), rules: new Map() }
const NO_OBJECTS: readonly K8sObject[] = []

const ROUTE_LISTS: Readonly<Record<string, 'httpRoutes' | 'grpcRoutes' | 'tcpRoutes' | 'tlsRoutes' | 'udpRoutes'>> = {
  HTTPRoute: 'httpRoutes',
  GRPCRoute: 'grpcRoutes',
  TCPRoute: 'tcpRoutes',
  TLSRoute: 'tlsRoutes',
  UDPRoute: 'udpRoutes',
}

const routeKeyOf = (e: Entry, t: TargetRef) => `${t.kind}/${e.namespace}/${t.name}`

/** The backend features of merged request features that apply to an L4 route of this protocol. */
export function l4BackendPolicies(policies: readonly PolicyIr[] | undefined, udp: boolean): readonly PolicyIr[] | undefined {
  const out = policies?.filter((p) => (udp ? p.name === 'loadBalancer' : (L4_FEATURES as readonly string[]).includes(p.name)))
  return out?.length ? out : undefined
}

/**
 * Entries kept across worlds by the Translator (store key → entry), reused while the object
 * and what its translation read are unchanged.
 */
export type PolicyEntryCache = Map<string, Entry>

/** Thrown by sync when two policies share a status key (a hand-made view): the caller translates from scratch. */
export class PolicyKeyClash extends Error {}

export class PolicyIndex {
  /** Kong's KongPlugins and KongConsumers (src/kong): the second configuration surface onto the same features. */
  readonly kong: KongIndex | undefined
  readonly #gateways: readonly GatewayState[]
  readonly #programmed: readonly ListenerState[]
  readonly #viewGateways: readonly K8sObject[]
  readonly #enabled: boolean
  readonly #cache: PolicyEntryCache | undefined

  /** The policy lists of the last synced view, per view field. */
  readonly #lists = new Map<string, readonly K8sObject[]>()
  readonly #entries = new Map<K8sObject, Entry>()
  readonly #byStatusKey = new Map<string, Entry>()
  readonly #gatewayEntries = new Set<Entry>()
  #gw: GatewayAttachment
  readonly #groups = new Map<string, RouteGroup>()

  /** Policy status key → route key → what that route adds to its status. */
  readonly #received = new Map<string, Map<string, Contribution>>()
  /** Groups whose contributions must be recomputed (their policies changed). */
  readonly #groupsToReport = new Set<string>()
  #reportAll = false
  /** Policies whose status must be recomputed. */
  readonly #dirty = new Set<string>()
  readonly #status = new Map<string, Record<string, unknown>>()
  readonly #statusKeys = new SortedSet<string>(cmp)

  /**
   * The index for one view, from scratch (translate()). Total: if attaching throws (a bug
   * meeting odd input), no policy applies and routes are served as without policies, rather
   * than nothing being served.
   */
  static build(view: ResourceView, gateways: readonly GatewayState[], programmed: readonly ListenerState[], backends?: Backends): PolicyIndex {
    try {
      const index = new PolicyIndex(view, gateways, programmed, true, undefined)
      index.sync(view, backends)
      return index
    } catch {
      return new PolicyIndex(view, gateways, programmed, false, undefined)
    }
  }

  /** An empty index for one Translator world (Gateways fixed); `sync` brings in the policies of each view. */
  static forWorld(view: ResourceView, gateways: readonly GatewayState[], programmed: readonly ListenerState[], cache: PolicyEntryCache): PolicyIndex {
    return new PolicyIndex(view, gateways, programmed, true, cache)
  }

  private constructor(view: ResourceView, gateways: readonly GatewayState[], programmed: readonly ListenerState[], enabled: boolean, cache: PolicyEntryCache | undefined) {
    this.#gateways = gateways
    this.#programmed = programmed
    this.#viewGateways = view.gateways
    this.#enabled = enabled
    this.#cache = cache
    this.kong = enabled ? KongIndex.build(view) : undefined
    this.#gw = new GatewayAttachment([], gateways, programmed, view.gateways)
  }

  /** Pools every policy calls (ext-auth Services), for a translation from scratch to add once. */
  get backendEffects(): BackendEffect[] {
    const out: BackendEffect[] = []
    for (const e of this.#entries.values()) out.push(...e.effects)
    return out
  }

  // ---------------------------------------------------------------- policies in

  /**
   * Brings the index to the policies of `view`. Returns the keys of routes whose policies
   * (rulePolicies, l4ProxyProtocol) changed: they must be translated again. `apply` receives
   * the backend effects of policies added (+1) and removed (-1).
   */
  sync(view: ResourceView, backends: Backends | undefined, apply?: (effects: readonly BackendEffect[], sign: 1 | -1) => void): Set<string> {
    const stale = new Set<string>()
    if (!this.#enabled) return stale
    const removed: K8sObject[] = []
    const added: { kind: PolicyKind; object: K8sObject }[] = []
    for (const crd of POLICY_CRDS) {
      const prev = this.#lists.get(crd.view) ?? NO_OBJECTS
      const next = view[crd.view]
      if (prev === next) continue
      this.#lists.set(crd.view, next)
      this.#pair(prev, next, removed, (object) => added.push({ kind: crd.kind, object }))
    }
    if (removed.length === 0 && added.length === 0) return stale

    const groups = new Set<string>()
    let gateways = false
    for (const o of removed) {
      const e = this.#entries.get(o)!
      this.#entries.delete(o)
      for (const t of e.targets) {
        if (t.kind === 'Gateway') gateways = true
        else {
          const g = this.#groups.get(routeKeyOf(e, t))!
          const at = g.entries.indexOf(e)
          if (at >= 0) g.entries.splice(at, 1)
          groups.add(g.key)
        }
      }
      this.#gatewayEntries.delete(e)
      apply?.(e.effects, -1)
      const sk = statusKeyOf(e)
      if (this.#byStatusKey.get(sk) === e) this.#byStatusKey.delete(sk)
      this.#dirty.add(sk)
      if (this.#cache?.get(keyOf(o)) === e) this.#cache.delete(keyOf(o))
    }
    for (const { kind, object } of added) {
      const e = this.#entryFor(kind, object, view, backends)
      this.#entries.set(object, e)
      const sk = statusKeyOf(e)
      if (this.#byStatusKey.has(sk)) throw new PolicyKeyClash(`two policies with status key ${sk}`)
      this.#byStatusKey.set(sk, e)
      this.#dirty.add(sk)
      apply?.(e.effects, 1)
      for (const t of e.targets) {
        if (t.kind === 'Gateway') {
          gateways = true
          this.#gatewayEntries.add(e)
          continue
        }
        const key = routeKeyOf(e, t)
        let g = this.#groups.get(key)
        if (!g) this.#groups.set(key, (g = { key, entries: [], claims: [], att: NO_ATTACHMENTS, ir: new Map(), contributions: new Map() }))
        if (!g.entries.includes(e)) g.entries.splice(insertionPoint(g.entries, e), 0, e)
        groups.add(key)
      }
    }
    if (gateways) this.#rebuildGateways()
    for (const key of groups) this.#regroup(key, stale)
    return stale
  }

  /** Walks two key-sorted lists side by side: unchanged objects keep their entry, the rest is removed or added. */
  #pair(prev: readonly K8sObject[], next: readonly K8sObject[], removed: K8sObject[], add: (o: K8sObject) => void): void {
    let i = 0
    let j = 0
    while (i < prev.length && j < next.length) {
      const a = prev[i]!
      const b = next[j]!
      if (a === b) {
        i++
        j++
        continue
      }
      const before = keyOf(a)
      const after = keyOf(b)
      if (before === after && sameObject(a, b)) {
        // equal but for status: keep the entry under the new object
        const e = this.#entries.get(a)!
        this.#entries.delete(a)
        this.#entries.set(b, e)
        i++
        j++
        continue
      }
      if (before <= after) removed.push(prev[i++]!)
      if (before >= after) add(next[j++]!)
    }
    while (i < prev.length) removed.push(prev[i++]!)
    while (j < next.length) add(next[j++]!)
  }

  #entryFor(kind: PolicyKind, object: K8sObject, view: ResourceView, backends: Backends | undefined): Entry {
    if (!this.#cache) return entryOf(kind, object, view, backends)
    const key = keyOf(object)
    const kept = this.#cache.get(key)
    if (kept && (kept.policy === object || sameObject(kept.policy, object)) && sameReads(kept.reads, view)) return kept
    const e = entryOf(kind, object, view, backends)
    this.#cache.set(key, e)
    return e
  }

  #rebuildGateways(): void {
    const before = this.#gw
    const entries = [...this.#gatewayEntries].sort(entryOrder)
    this.#gw = new GatewayAttachment(entries, this.#gateways, this.#programmed, this.#viewGateways)
    for (const e of before.results.keys()) this.#dirty.add(statusKeyOf(e))
    for (const e of entries) this.#dirty.add(statusKeyOf(e))
    // routes report overriding Gateway-level features: redo those reports if the winners changed
    if (before.signature !== this.#gw.signature) this.#reportAll = true
  }

  /** Recomputes a group's claims and merged features after its policies changed. */
  #regroup(key: string, stale: Set<string>): void {
    const g = this.#groups.get(key)!
    const before = g.att
    if (g.entries.length === 0) {
      this.#report(key, new Map())
      this.#groups.delete(key)
      this.#groupsToReport.delete(key)
      if (before.route.size || before.rules.size) stale.add(key)
      return
    }
    g.claims = claimsOf(g)
    g.att = attachmentsOf(g)
    if (!sameAttachments(before, g.att)) {
      stale.add(key)
      g.ir.clear()
    }
    this.#groupsToReport.add(key)
  }

  // ---------------------------------------------------------------- what the IR reads

  /** Request features of a listener (Gateway and listener policies merged), or undefined. */
  listenerPolicies(l: ListenerState): readonly PolicyIr[] | undefined {
    return this.#gw.listenerPolicies(l)
  }

  httpPortConnection(port: number): ConnectionSettings | undefined {
    return this.#gw.httpPorts.get(port)
  }

  l4PortConnection(protocol: string, port: number): ConnectionSettings | undefined {
    return this.#gw.l4Ports.get(`${protocol}/${port}`)
  }

  /** Request features of one rule of a route (route and rule policies merged), or undefined. */
  rulePolicies(route: K8sObject, ruleName: string | undefined): readonly PolicyIr[] | undefined {
    const g = this.#groups.get(keyOf(route))
    if (!g) return undefined
    const memo = ruleName ?? ''
    if (g.ir.has(memo)) return g.ir.get(memo)
    const merged = new Map(g.att.route)
    if (ruleName !== undefined) for (const [n, w] of g.att.rules.get(ruleName) ?? []) merged.set(n, w)
    const ir = toIr(merged.values())
    g.ir.set(memo, ir)
    return ir
  }

  /** BackendTrafficPolicy proxyProtocol for one rule of a TCPRoute/TLSRoute. */
  l4ProxyProtocol(route: K8sObject, ruleName: string | undefined): 'V1' | 'V2' | undefined {
    const att = this.#groups.get(keyOf(route))?.att
    if (!att) return undefined
    const w = (ruleName !== undefined ? att.rules.get(ruleName)?.get('proxyProtocol') : undefined) ?? att.route.get('proxyProtocol')
    return w?.feature.scope === 'l4route' ? w.feature.proxyProtocol : undefined
  }

  // ---------------------------------------------------------------- status

  /**
   * Brings policy status up to date with `view`: `changedRoutes` are the keys of routes added,
   * changed or removed since the last call (whether a route exists, its parents and its rule
   * names are part of its policies' status).
   */
  refreshStatus(view: ResourceView, gateways: ReadonlyMap<string, GatewayState>, controllerName: string, changedRoutes: Iterable<string>): void {
    if (this.#reportAll) {
      for (const key of this.#groups.keys()) this.#groupsToReport.add(key)
      this.#reportAll = false
    }
    for (const key of changedRoutes) if (this.#groups.has(key)) this.#groupsToReport.add(key)
    for (const key of this.#groupsToReport) {
      const g = this.#groups.get(key)
      if (g) this.#report(key, this.#contributions(g, routeInfo(view, key, gateways), gateways))
    }
    this.#groupsToReport.clear()
    for (const sk of this.#dirty) {
      const e = this.#byStatusKey.get(sk)
      const value = e ? this.#statusOf(e, controllerName) : undefined
      if (value) this.#status.set(sk, value)
      else this.#status.delete(sk)
      this.#statusKeys.touch(sk)
    }
    this.#dirty.clear()
  }

  /** Writes status.ancestors of every policy we have something to say about (and Kong's statuses). */
  writeStatus(view: ResourceView, gateways: ReadonlyMap<string, GatewayState>, controllerName: string, status: StatusMap): void {
    this.kong?.writeStatus(status)
    this.refreshStatus(view, gateways, controllerName, [])
    for (const [k, v] of this.#status) status[k] = v
  }

  /** Keys of the policies with a status, sorted (after refreshStatus). */
  statusKeys(): readonly string[] {
    return this.#statusKeys.items(
      (k) => this.#status.has(k),
      () => this.#status.keys(),
    )
  }

  status(key: string): Record<string, unknown> | undefined {
    return this.#status.get(key)
  }

  /** Replaces what route `key` adds to policies' status; the policies whose part changed are recomputed. */
  #report(key: string, next: ReadonlyMap<string, Contribution>): void {
    const g = this.#groups.get(key)
    const before = g?.contributions ?? new Map<string, Contribution>()
    for (const sk of before.keys()) if (!next.has(sk)) this.#received.get(sk)?.delete(key)
    for (const [sk, c] of next) {
      let byRoute = this.#received.get(sk)
      if (!byRoute) this.#received.set(sk, (byRoute = new Map()))
      byRoute.set(key, c)
    }
    for (const sk of before.keys()) {
      this.#dirty.add(sk)
      if (this.#received.get(sk)?.size === 0) this.#received.delete(sk)
    }
    for (const sk of next.keys()) this.#dirty.add(sk)
    if (g) g.contributions = next
  }

  /** What a route's policies add to their own status (and to the Gateway-level ones they override). */
  #contributions(g: RouteGroup, info: RouteInfo | undefined, gateways: ReadonlyMap<string, GatewayState>): Map<string, Contribution> {
    const out = new Map<string, Contribution>()
    const of = (e: Entry) => {
      const sk = statusKeyOf(e)
      let c = out.get(sk)
      if (!c) out.set(sk, (c = { claims: [], overridden: [] }))
      return c
    }
    for (const c of g.claims) {
      const e = c.entry
      const accepted = c.problem
        ? condition('Accepted', 'False', c.problem.reason, c.problem.message, e.generation)
        : condition('Accepted', 'True', REASON.Accepted, 'Policy has been accepted.', e.generation)
      if (!info) {
        const notFound = accepted.status === 'True' || accepted.reason === REASON.Conflicted ? condition('Accepted', 'False', REASON.TargetNotFound, `${c.target.kind} ${e.namespace}/${c.target.name} not found`, e.generation) : accepted
        of(e).claims.push({ index: c.index, ancestor: g.key, ref: ancestorRef(c.target.kind, e.namespace, c.target.name), accepted: notFound, replace: true })
        continue
      }
      let cond = accepted
      if (cond.status === 'True' && c.target.sectionName !== undefined && !info.rules.has(c.target.sectionName))
        cond = condition('Accepted', 'False', REASON.TargetNotFound, `${c.target.kind} ${e.namespace}/${c.target.name} has no rule named ${c.target.sectionName}`, e.generation)
      for (const p of info.parents) {
        const [ns, name] = p.split('/') as [string, string]
        of(e).claims.push({ index: c.index, ancestor: gatewayAncestor(ns, name), ref: ancestorRef('Gateway', ns, name), accepted: cond, replace: false })
      }
    }
    if (!info) return out

    // Overridden: a rule's feature over its route's, a route's over its Gateways'
    const overriddenBy = (w: Winner, message: string) => {
      const keys = w.level === 'route' || w.level === 'rule' ? info.parents.map((p) => gatewayAncestor(...(p.split('/') as [string, string]))) : [w.ancestor]
      for (const ancestor of keys) of(w.entry).overridden.push({ ancestor, message })
    }
    const where = `${g.key.slice(0, g.key.indexOf('/'))} ${g.key.slice(g.key.indexOf('/') + 1)}`
    const active: Winner[] = [...g.att.route.values()]
    for (const [rule, features] of g.att.rules) {
      if (!info.rules.has(rule)) continue
      for (const [n, w] of features) {
        active.push(w)
        const routeLevel = g.att.route.get(n)
        if (routeLevel && routeLevel.entry !== w.entry) overriddenBy(routeLevel, `${n} on rule ${rule} of ${where} by ${who(w.entry)}`)
      }
    }
    for (const w of active)
      for (const p of w.feature.scope === 'request' ? info.parents : []) {
        for (const l of gateways.get(p)?.listeners ?? []) {
          const lw = this.#gw.listeners.get(l)?.get(w.feature.name)
          if (lw && lw.feature.scope === 'request' && lw.entry !== w.entry) overriddenBy(lw, `${w.feature.name} on ${where} by ${who(w.entry)}`)
        }
      }
    // only non-empty parts, so that a policy hears from the routes that concern it
    for (const [sk, c] of out) if (c.claims.length === 0 && c.overridden.length === 0) out.delete(sk)
    return out
  }

  #statusOf(e: Entry, controllerName: string): Record<string, unknown> | undefined {
    const mine = new Map<string, AncestorState>()
    for (const [k, s] of this.#gw.results.get(e) ?? []) mine.set(k, { ref: s.ref, accepted: s.accepted, overridden: new Set(), conflicted: new Set() })
    const received = this.#received.get(statusKeyOf(e))
    if (received) {
      // targets in the order the policy lists them: one ancestor for several targets behind the
      // same Gateway shows the first problem, a success only when there is none
      const claims = [...received.values()].flatMap((c) => c.claims).sort((a, b) => a.index - b.index)
      for (const c of claims) {
        const prev = mine.get(c.ancestor)
        if (c.replace || !prev || (prev.accepted.status === 'True' && c.accepted.status === 'False'))
          mine.set(c.ancestor, { ref: c.ref, accepted: c.accepted, overridden: prev?.overridden ?? new Set(), conflicted: prev?.conflicted ?? new Set() })
      }
      for (const c of received.values()) for (const o of c.overridden) mine.get(o.ancestor)?.overridden.add(o.message)
    }
    for (const [k, n] of this.#gw.notes.get(e) ?? []) {
      const a = mine.get(k)
      if (!a) continue
      for (const m of n.overridden) a.overridden.add(m)
      for (const m of n.conflicted) a.conflicted.add(m)
    }
    if (mine.size === 0) return undefined
    const ancestors = [...mine.entries()]
      .sort(([a], [b]) => cmp(a, b))
      .slice(0, MAX_ANCESTORS)
      .map(([, a]) => {
        const conditions: Condition[] = [a.accepted]
        if (a.accepted.status === 'True' && a.overridden.size)
          conditions.push(condition('Overridden', 'True', REASON.Overridden, `This policy is being overridden by more specific policies: ${[...a.overridden].sort().join('; ')}`, e.generation))
        if (a.accepted.status === 'True' && a.conflicted.size) conditions.push(condition('Conflicted', 'True', REASON.Conflicted, [...a.conflicted].sort().join('; '), e.generation))
        return { ancestorRef: a.ref, controllerName, conditions }
      })
    return { ancestors }
  }
}

/** Where to insert `e` to keep `entries` oldest first. */
function insertionPoint(entries: readonly Entry[], e: Entry): number {
  let i = entries.length
  while (i > 0 && entryOrder(entries[i - 1]!, e) > 0) i--
  return i
}

/** The claims of a route's policies, oldest policy first, each policy's targets in its order. */
function claimsOf(g: RouteGroup): RouteClaim[] {
  const held = new Map<string, Entry>()
  const out: RouteClaim[] = []
  for (const e of g.entries) e.targets.forEach((t, index) => t.kind !== 'Gateway' && routeKeyOf(e, t) === g.key && out.push(claimOf(e, t, index, g.key, held)))
  return out
}

function claimOf(e: Entry, t: TargetRef, index: number, routeKey: string, held: Map<string, Entry>): RouteClaim {
  let problem: RouteClaim['problem']
  let closes = false
  const claim = `${e.kind}|${routeKey}#${t.sectionName ?? ''}`
  if (e.invalid) {
    problem = { reason: REASON.Invalid, message: e.invalid }
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
      const holder = held.get(claim)
      if (holder && holder !== e) {
        const what = t.sectionName !== undefined ? `rule ${t.sectionName} of ${t.kind} ${e.namespace}/${t.name}` : `${t.kind} ${e.namespace}/${t.name}`
        problem = { reason: REASON.Conflicted, message: `${who(holder)} (older) already targets ${what}` }
      } else held.set(claim, e)
    }
  }
  return { entry: e, target: t, index, ...(problem ? { problem } : {}), ...(closes ? { closes } : {}) }
}

/** Features merged per route, rule-level kept apart (rule names are checked per route). */
function attachmentsOf(g: RouteGroup): RouteAttachments {
  const route = new Map<string, Winner>()
  const rules = new Map<string, Map<string, Winner>>()
  const [kind, ns, name] = g.key.split('/') as [string, string, string]
  for (const c of g.claims) {
    if (c.problem && !c.closes) continue
    const level = c.target.sectionName === undefined ? 'route' : 'rule'
    const into = level === 'route' ? route : (rules.get(c.target.sectionName!) ?? rules.set(c.target.sectionName!, new Map()).get(c.target.sectionName!)!)
    for (const f of c.entry.features) if (!into.has(f.name)) into.set(f.name, { entry: c.entry, feature: f, ancestor: `${kind}/${ns}/${name}`, level })
  }
  return { route, rules }
}

function sameWinners(a: ReadonlyMap<string, Winner>, b: ReadonlyMap<string, Winner> | undefined): boolean {
  if (!b || a.size !== b.size) return false
  for (const [n, w] of a) {
    const o = b.get(n)
    if (!o || o.entry !== w.entry || o.feature !== w.feature) return false
  }
  return true
}

function sameAttachments(a: RouteAttachments, b: RouteAttachments): boolean {
  if (!sameWinners(a.route, b.route) || a.rules.size !== b.rules.size) return false
  for (const [rule, winners] of a.rules) if (!sameWinners(winners, b.rules.get(rule))) return false
  return true
}

interface RouteInfo {
  /** "ns/name" of our Gateways the route names in its parentRefs. */
  readonly parents: readonly string[]
  readonly rules: ReadonlySet<string>
}

/** The route a group names, as its policies' status needs it; undefined when it does not exist. */
function routeInfo(view: ResourceView, routeKey: string, gateways: ReadonlyMap<string, GatewayState>): RouteInfo | undefined {
  const kind = routeKey.slice(0, routeKey.indexOf('/'))
  const list = ROUTE_LISTS[kind] ? view[ROUTE_LISTS[kind]] : undefined
  const route = list ? findByKey(list, routeKey) : undefined
  return route ? { parents: parentGateways(route, gateways), rules: ruleNames(route) } : undefined
}

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
