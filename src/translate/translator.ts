/**
 * translate() with memory, for the control loop: the same result as translate(view, opts) for
 * every view, at a cost that follows what changed since the previous call rather than how many
 * routes there are (a new route among 5,000 must not hold the event loop for tens of ms).
 *
 * - A route's outcome (route-outcome.ts) depends only on the route and the "world" (WORLD
 *   below). While the world is unchanged, an unchanged route keeps its outcome. Unchanged means
 *   the same object (the store replaces an object only when it changed, and inputs are never
 *   mutated) or one that differs only in status and resourceVersion (unchanged.ts).
 * - The outcomes are summed in RouteTotals by difference: the previous and the new route lists
 *   are walked side by side (both sorted by key), and only outcomes of routes that appeared,
 *   changed or went away are added or removed.
 * - Gateways are built once per world; pools are reused per Service while its EndpointSlices are
 *   the same (PoolMemo). Unchanged routes keep their IR rule objects, which lets validate and
 *   compile skip them too.
 * When anything in the world changes, all of it is dropped and rebuilt (simple and safe; route
 * edits are the frequent case, and EndpointSlices, the other one, are not part of the world).
 * Portico's policy CRDs are the exception: with one on every route they change as often as
 * routes, so the world's PolicyIndex follows them itself and names the routes whose attached
 * policies changed; those are translated again like changed routes.
 * test/translate/incremental.test.ts and test/policy/attach-incremental.test.ts hold this to
 * translate() over random change sequences.
 */
import type { K8sObject } from '../store/kinds.ts'
import { keyOf, RESOURCE_KINDS } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import { POLICY_CRDS } from '../policy/crds.ts'
import { PolicyIndex, type PolicyEntryCache } from '../policy/attach.ts'
import { applyBackendTlsPolicies } from './backend-tls.ts'
import { Backends, PoolMemo } from './backends.ts'
import { Context } from './context.ts'
import { compositeStatuses } from './composite.ts'
import { buildGateways, gatewayClasses, gatewayStatus, listenerSetStatus, type GatewayState, type ListenerState } from './gateway.ts'
import { grpcRouteOutcome, httpRouteOutcome, l4RouteOutcome, type RouteOutcome } from './route-outcome.ts'
import { buildHttpPorts, buildL4Ports, programmedListeners } from './snapshot.ts'
import { RouteTotals } from './totals.ts'
import { translate } from './translate.ts'
import type { StatusMap, TranslateOptions, TranslateResult } from './types.ts'
import { sameObject, sameObjects } from './unchanged.ts'
import { cmp } from './util.ts'

/**
 * What a route's translation may read besides the route itself: the kinds of role 'world' in
 * RESOURCE_KINDS but the policy CRDs (see above). EndpointSlices are not in it: they only fill pools'
 * endpoints, which PoolMemo checks per Service.
 */
type WorldField = Extract<(typeof RESOURCE_KINDS)[number], { role: 'world' }>['view']
/** Policy CRDs are world kinds, but the policy index follows their changes itself (src/policy/attach.ts). */
const INCREMENTAL_POLICIES: ReadonlySet<string> = new Set(POLICY_CRDS.map((c) => c.view))
const WORLD = RESOURCE_KINDS.flatMap((k) => (k.role === 'world' && !INCREMENTAL_POLICIES.has(k.view) ? [k.view] : [])) as readonly WorldField[]

/** The route lists of the view, with their outcomes at the same indexes. */
const ROUTE_LISTS = ['httpRoutes', 'grpcRoutes', 'tlsRoutes', 'tcpRoutes', 'udpRoutes'] as const
type RouteList = (typeof ROUTE_LISTS)[number]
const KIND_OF: Record<RouteList, string> = { httpRoutes: 'HTTPRoute/', grpcRoutes: 'GRPCRoute/', tlsRoutes: 'TLSRoute/', tcpRoutes: 'TCPRoute/', udpRoutes: 'UDPRoute/' }

interface Routes {
  readonly objects: readonly K8sObject[]
  readonly outcomes: readonly RouteOutcome[]
}

/** State kept from one translation to the next while the world stays the same. */
interface World {
  readonly inputs: { [F in WorldField]: readonly K8sObject[] }
  /** Built once per world; RouteTotals keeps their attachedRoutes counts. */
  readonly gateways: readonly GatewayState[]
  readonly byKey: ReadonlyMap<string, GatewayState>
  readonly listeners: readonly ListenerState[]
  /** Policy attachment for this world's Gateways, synced with the policies of every view. */
  policies: PolicyIndex | undefined
  readonly routes: Record<RouteList, Routes>
  readonly totals: RouteTotals
  readonly pools: PoolMemo
}

const NO_ROUTES: Routes = { objects: [], outcomes: [] }

export class Translator {
  readonly #opts: TranslateOptions
  #world: World | undefined
  /** Translated policies, kept across worlds while what they read is unchanged. */
  readonly #policyEntries: PolicyEntryCache = new Map()
  /** Completes the previous result's status before this translation changes what it reads. */
  #settlePrevious: (() => void) | undefined

  constructor(opts: TranslateOptions) {
    this.#opts = opts
  }

  translate(view: ResourceView): TranslateResult {
    this.#settlePrevious?.()
    this.#settlePrevious = undefined
    try {
      return this.#translate(view)
    } catch (e) {
      // translate is total, but if it ever throws, half-updated memory must not outlive it
      this.#world = undefined
      throw e
    }
  }

  #translate(view: ResourceView): TranslateResult {
    const ctx = new Context(view, this.#opts)
    const status: StatusMap = {}
    const ours = gatewayClasses(ctx, status)
    const world = this.#worldFor(view, ctx, ours)
    const backends = new Backends(ctx, world.totals.usage, world.pools)
    // policies first: whether a Service speaks TLS changes how its backendRefs resolve
    const finishPolicies = applyBackendTlsPolicies(ctx, backends, status)
    const policies = (world.policies ??= PolicyIndex.forWorld(view, world.gateways, world.listeners, this.#policyEntries))
    let stale: readonly string[]
    try {
      // routes whose attached policies changed are translated again
      const changed = policies.sync(view, backends, (effects, sign) => world.totals.usage.apply(effects, sign))
      // only routes translated before can be stale (a new route with its policies is not)
      stale = [...changed].filter((key) => world.totals.has(key))
    } catch {
      // half-synced (a bug meeting odd input, or two policies with one status key): from scratch
      this.#world = undefined
      return translate(view, this.#opts)
    }

    const removed: RouteOutcome[] = []
    const added: RouteOutcome[] = []
    for (const list of ROUTE_LISTS) {
      const outcomeOf = list === 'httpRoutes' ? httpRouteOutcome : list === 'grpcRoutes' ? grpcRouteOutcome : l4RouteOutcome
      world.routes[list] = diff(world.routes[list], view[list], (route) => outcomeOf(ctx, route, world.byKey, backends, policies), removed, added, stale.length ? stale.filter((key) => key.startsWith(KIND_OF[list])) : stale)
    }
    for (const o of removed) world.totals.remove(o)
    for (const o of added) world.totals.add(o)
    if (world.totals.duplicateKeys > 0) {
      // two objects with one key (a hand-made view; the store has one per key): which one wins
      // depends on view order, which the totals do not keep
      this.#world = undefined
      return translate(view, this.#opts)
    }

    for (const g of world.gateways) {
      status[keyOf(g.gateway)] = gatewayStatus(g)
      for (const s of g.listenerSets ?? []) status[keyOf(s.set)] = listenerSetStatus(s)
    }
    finishPolicies()
    compositeStatuses(backends, status)
    policies.kong?.writeStatus(status)
    policies.refreshStatus(view, world.byKey, ctx.opts.controllerName, changedKeys(removed, added))

    const listeners = world.listeners
    const l4 = ROUTE_LISTS.filter((list) => list !== 'httpRoutes' && list !== 'grpcRoutes').flatMap((list) => world.routes[list].outcomes.flatMap((o) => o.l4))
    const ir = {
      revision: view.revision,
      http: buildHttpPorts(listeners, (l) => world.totals.virtualHosts(l), policies),
      l4: buildL4Ports(listeners, l4, policies),
      pools: backends.pools(),
    }
    world.pools.rotate()
    // The status map (one entry per route) is merged on first read, not here: the controller
    // reads it once the snapshot is live, so a new route among thousands serves without waiting
    // for it. It reads world.totals, which the next translation changes, so that one settles it
    // first: a result's status is always the one of its own view.
    let merged: StatusMap | undefined
    const settle = (): StatusMap => (merged ??= mergeStatus(status, world.totals, policies))
    this.#settlePrevious = settle
    return {
      ir,
      get status() {
        return settle()
      },
    }
  }

  /** The previous world if nothing a route reads changed, else a fresh, empty one. */
  #worldFor(view: ResourceView, ctx: Context, ours: ReadonlySet<string>): World {
    const prev = this.#world
    if (prev && WORLD.every((f) => sameObjects(prev.inputs[f], view[f]))) {
      // equal but not identical (status written back): compare with the new ones from now on
      for (const f of WORLD) prev.inputs[f] = view[f]
      return prev
    }
    const gateways = buildGateways(ctx, ours)
    const listeners = programmedListeners(gateways)
    const world: World = {
      inputs: Object.fromEntries(WORLD.map((f) => [f, view[f]])) as World['inputs'],
      gateways,
      byKey: new Map(gateways.map((g) => [g.key, g])),
      listeners,
      policies: undefined,
      routes: { httpRoutes: NO_ROUTES, grpcRoutes: NO_ROUTES, tlsRoutes: NO_ROUTES, tcpRoutes: NO_ROUTES, udpRoutes: NO_ROUTES },
      totals: new RouteTotals(),
      pools: new PoolMemo(),
    }
    this.#world = world
    return world
  }
}

/**
 * The outcomes for `next`, reusing those of `prev` for unchanged objects. Both lists are sorted
 * by key (the view's order), so one walk pairs them up; whatever is not paired is removed or
 * added. An unsorted list only pairs up less (more recomputing), never wrongly: every object is
 * consumed once, so prev − removed + added = next, as multisets.
 */
function diff(prev: Routes, next: readonly K8sObject[], compute: (route: K8sObject) => RouteOutcome, removed: RouteOutcome[], added: RouteOutcome[], stale: readonly string[]): Routes {
  // positions in prev of routes whose attached policies changed: translated again
  const again = stale.length ? positionsOf(prev.outcomes, stale) : NO_POSITIONS
  if (prev.objects === next && again.length === 0) return prev
  const outcomes = new Array<RouteOutcome>(next.length)
  const take = (j: number) => {
    const o = compute(next[j]!)
    outcomes[j] = o
    added.push(o)
  }
  let i = 0
  let j = 0
  let k = 0
  while (i < prev.objects.length && j < next.length) {
    if (i === again[k]) {
      k++
      removed.push(prev.outcomes[i++]!)
      continue
    }
    if (prev.objects[i] === next[j]) {
      outcomes[j] = prev.outcomes[i]!
      i++
      j++
      continue
    }
    const before = prev.outcomes[i]!.key
    const after = keyOf(next[j]!)
    if (before === after && sameObject(prev.objects[i]!, next[j]!)) {
      outcomes[j] = prev.outcomes[i]!
      i++
      j++
      continue
    }
    if (before <= after) removed.push(prev.outcomes[i++]!)
    if (before >= after) take(j++)
  }
  while (i < prev.objects.length) removed.push(prev.outcomes[i++]!)
  while (j < next.length) take(j++)
  return { objects: next, outcomes }
}

const NO_POSITIONS: readonly number[] = []

/** Ascending positions of these keys in outcomes (sorted by key, as views are; a miss scans). */
function positionsOf(outcomes: readonly RouteOutcome[], keys: readonly string[]): number[] {
  const out: number[] = []
  for (const key of keys) {
    let lo = 0
    let hi = outcomes.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (outcomes[mid]!.key < key) lo = mid + 1
      else hi = mid
    }
    if (lo < outcomes.length && outcomes[lo]!.key === key) out.push(lo)
    else {
      // an unsorted (hand-made) list
      const at = outcomes.findIndex((o) => o.key === key)
      if (at >= 0) out.push(at)
    }
  }
  return out.sort((a, b) => a - b)
}

/** Keys of the routes whose outcome was added or taken back. */
function changedKeys(removed: readonly RouteOutcome[], added: readonly RouteOutcome[]): Set<string> {
  const keys = new Set<string>()
  for (const o of removed) keys.add(o.key)
  for (const o of added) keys.add(o.key)
  return keys
}

/** Route and policy statuses (each kept sorted) merged with the few others, in key order. */
function mergeStatus(others: StatusMap, totals: RouteTotals, policies: PolicyIndex): StatusMap {
  const sources: { keys: readonly string[]; at: number; get: (k: string) => Record<string, unknown> }[] = [
    { keys: Object.keys(others).sort(cmp), at: 0, get: (k) => others[k]! },
    { keys: totals.statusKeys(), at: 0, get: (k) => totals.routeStatus(k)! },
    { keys: policies.statusKeys(), at: 0, get: (k) => policies.status(k)! },
  ]
  const out: StatusMap = {}
  for (;;) {
    let next: (typeof sources)[number] | undefined
    for (const s of sources) if (s.at < s.keys.length && (!next || s.keys[s.at]! < next.keys[next.at]!)) next = s
    if (!next) return out
    const k = next.keys[next.at++]!
    out[k] = next.get(k)
  }
}
