/**
 * The Gateway side of policy attachment: policies targeting Gateways and listeners, their
 * Accepted conditions there, the features merged per listener (listener beats Gateway), and
 * the connection settings per port. It reads only policies with a Gateway target and the
 * Gateways, so attach.ts rebuilds it whole when one of those policies changes (they are few)
 * and never for a change that touches only routes and the policies on them.
 */
import type { ConnectionSettings, PolicyIr } from './kind.ts'
import { policyIr, type Feature } from './translators.ts'
import { GATEWAY_API_GROUP, type TargetRef } from './targets.ts'
import { cmp, misfitMessage, statusKeyOf, unsupportedOn, L4_FEATURES, who, type Entry } from './entry.ts'
import { condition } from '../status/conditions.ts'
import type { K8sObject } from '../store/kinds.ts'
import type { GatewayState, ListenerState } from '../translate/gateway.ts'
import type { Condition } from '../translate/types.ts'

/** One feature as merged at some level, with the policy and the ancestor it came through. */
export interface Winner {
  readonly entry: Entry
  readonly feature: Feature
  readonly ancestor: string
  readonly level: 'gateway' | 'listener' | 'route' | 'rule'
}

/** What a policy says about one ancestor (status.ancestors[] entry, before it is written). */
export interface AncestorState {
  readonly ref: Record<string, unknown>
  readonly accepted: Condition
  readonly overridden: Set<string>
  readonly conflicted: Set<string>
}

export type Notes = Map<Entry, Map<string, { overridden: Set<string>; conflicted: Set<string> }>>

export const REASON = { Accepted: 'Accepted', Invalid: 'Invalid', TargetNotFound: 'TargetNotFound', Conflicted: 'Conflicted', Overridden: 'Overridden' } as const

export const gatewayAncestor = (ns: string, name: string, section?: string) => `Gateway/${ns}/${name}/${section ?? ''}`

export function ancestorRef(kind: string, namespace: string, name: string, sectionName?: string): Record<string, unknown> {
  return { group: GATEWAY_API_GROUP, kind, namespace, name, ...(sectionName !== undefined ? { sectionName } : {}) }
}

/** The request features of winners as PolicyIr, sorted by name (undefined when none). */
export function toIr(winners: Iterable<Winner> | undefined): readonly PolicyIr[] | undefined {
  const out: PolicyIr[] = []
  for (const w of winners ?? []) if (w.feature.scope === 'request') out.push(policyIr(w.entry.kind, w.entry.namespace, w.entry.name, w.feature))
  return out.length ? out.sort((a, b) => cmp(a.name, b.name)) : undefined
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

export class GatewayAttachment {
  /** Per entry, ancestor key → its state there. */
  readonly results = new Map<Entry, Map<string, AncestorState>>()
  /** Request and connection features per listener, merged (listener beats Gateway). */
  readonly listeners = new Map<ListenerState, Map<string, Winner>>()
  /** The same from Gateway-wide policies only (the fallback when a port's listeners disagree). */
  readonly #gatewayWide = new Map<ListenerState, Map<string, Winner>>()
  readonly #listenerIr = new Map<ListenerState, readonly PolicyIr[] | undefined>()
  readonly httpPorts = new Map<number, ConnectionSettings>()
  readonly l4Ports = new Map<string, ConnectionSettings>()
  /** Overridden / Conflicted messages known from policies and Gateways alone. */
  readonly notes: Notes = new Map()
  /**
   * The request-feature winners per listener, as text: route-level policies report overriding
   * them, so while it is the same those reports stay valid.
   */
  readonly signature: string

  /** `entries`: the policies with a Gateway target, oldest first (entryOrder). */
  constructor(entries: readonly Entry[], gateways: readonly GatewayState[], programmed: readonly ListenerState[], viewGateways: readonly K8sObject[]) {
    const ours = new Map(gateways.map((g) => [g.key, g]))
    const allGateways = new Set(viewGateways.map((g) => `${g.metadata.namespace ?? 'default'}/${g.metadata.name}`))
    const held = new Map<string, Entry>()
    const gatewayWinners = new Map<string, Entry[]>() // "ns/name#section" → holders, oldest first
    for (const e of entries) {
      const results = new Map<string, AncestorState>()
      this.results.set(e, results)
      for (const t of e.targets) if (t.kind === 'Gateway') this.#target(e, t, results, ours, allGateways, viewGateways, held, gatewayWinners)
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
        this.listeners.set(l, merged)
        this.#gatewayWide.set(l, wide)
      }
      // listeners a ListenerSet adds take the Gateway-wide policies (a set cannot be targeted yet)
      for (const s of g.listenerSets ?? [])
        for (const l of s.listeners) {
          this.listeners.set(l, new Map(wide))
          this.#gatewayWide.set(l, wide)
        }
    }
    this.#connectionSettings(programmed)

    const sig: string[] = []
    for (const g of gateways)
      for (const l of g.listeners)
        for (const [n, w] of this.listeners.get(l) ?? []) if (w.feature.scope === 'request') sig.push(`${g.key}#${l.name}|${n}|${statusKeyOf(w.entry)}|${w.ancestor}`)
    this.signature = sig.join('\n')
  }

  #target(
    e: Entry,
    t: TargetRef,
    results: Map<string, AncestorState>,
    ours: ReadonlyMap<string, GatewayState>,
    allGateways: ReadonlySet<string>,
    viewGateways: readonly K8sObject[],
    held: Map<string, Entry>,
    gatewayWinners: Map<string, Entry[]>,
  ): void {
    const gwKey = `${e.namespace}/${t.name}`
    const g = ours.get(gwKey)
    const anc = gatewayAncestor(e.namespace, t.name, t.sectionName)
    const state = (accepted: Condition): AncestorState => ({ ref: ancestorRef('Gateway', e.namespace, t.name, t.sectionName), accepted, overridden: new Set(), conflicted: new Set() })
    const cond = (status: 'True' | 'False', reason: string, message: string) => condition('Accepted', status, reason, message, e.generation)
    if (!g) {
      // another controller's Gateway is not ours to report on
      if (!allGateways.has(gwKey)) {
        const elsewhere = viewGateways.find((o) => o.metadata.name === t.name)
        const hint = elsewhere ? ` (a policy attaches only to targets in its own namespace; Gateway ${t.name} is in namespace ${elsewhere.metadata.namespace})` : ''
        results.set(anc, state(cond('False', REASON.TargetNotFound, `Gateway ${gwKey} not found${hint}`)))
      }
      return
    }
    if (e.invalid && e.features.length === 0) {
      results.set(anc, state(cond('False', REASON.Invalid, e.invalid)))
      return
    }
    if (t.sectionName !== undefined && !g.listeners.some((l) => l.name === t.sectionName)) {
      results.set(anc, state(cond('False', REASON.TargetNotFound, `Gateway ${gwKey} has no listener named ${t.sectionName}`)))
      return
    }
    const misfit = e.features.map((f) => unsupportedOn(f, 'Gateway')).find((m) => m !== undefined) ?? l4ListenerMisfit(e, g, t.sectionName)
    if (misfit) {
      results.set(anc, state(cond('False', REASON.Invalid, misfitMessage(misfit))))
      return
    }
    const claim = `${e.kind}|${gwKey}#${t.sectionName ?? ''}`
    const holder = held.get(claim)
    if (holder && holder !== e) {
      const what = t.sectionName !== undefined ? `listener ${t.sectionName} of Gateway ${gwKey}` : `Gateway ${gwKey}`
      results.set(anc, state(cond('False', REASON.Conflicted, `${who(holder)} (older) already targets ${what}`)))
      return
    }
    held.set(claim, e)
    // an invalid fail-closed policy holds its target (which answers 500) and says why
    results.set(anc, state(e.invalid ? cond('False', REASON.Invalid, e.invalid) : cond('True', REASON.Accepted, 'Policy has been accepted.')))
    const w = gatewayWinners.get(`${gwKey}#${t.sectionName ?? ''}`) ?? []
    if (!w.includes(e)) w.push(e)
    gatewayWinners.set(`${gwKey}#${t.sectionName ?? ''}`, w)
  }

  #note(e: Entry, ancestor: string) {
    const byAncestor = this.notes.get(e) ?? this.notes.set(e, new Map()).get(e)!
    return byAncestor.get(ancestor) ?? byAncestor.set(ancestor, { overridden: new Set(), conflicted: new Set() }).get(ancestor)!
  }

  /** Per port, the settings all its listeners agree on (see attach.ts for disagreement). */
  #connectionSettings(programmed: readonly ListenerState[]): void {
    const http = new Map<number, ListenerState[]>()
    const l4 = new Map<string, ListenerState[]>()
    for (const l of programmed) {
      if (l.protocol === 'HTTP' || l.protocol === 'HTTPS') http.set(l.port, [...(http.get(l.port) ?? []), l])
      else if (l.protocol === 'TCP' || l.protocol === 'TLS') l4.set(`${l.protocol}/${l.port}`, [...(l4.get(`${l.protocol}/${l.port}`) ?? []), l])
    }
    for (const [port, ls] of http) {
      const s = this.#portSettings(ls, true, `port ${port}`)
      if (s) this.httpPorts.set(port, s)
    }
    for (const [key, ls] of l4) {
      const s = this.#portSettings(ls, false, `port ${key.slice(key.indexOf('/') + 1)}`)
      if (s) this.l4Ports.set(key, s)
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
      const full = listeners.map((l) => valueOf(this.listeners.get(l), field))
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

  /** Request features of a listener (Gateway and listener policies merged), or undefined. */
  listenerPolicies(l: ListenerState): readonly PolicyIr[] | undefined {
    if (this.#listenerIr.has(l)) return this.#listenerIr.get(l)
    const ir = toIr(this.listeners.get(l)?.values())
    this.#listenerIr.set(l, ir)
    return ir
  }
}
