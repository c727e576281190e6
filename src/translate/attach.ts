/**
 * Route attachment: which listeners a route's parentRefs select, whether those listeners let
 * the route in (kind, namespace, hostname), and the per-parent Accepted condition. The same
 * logic serves HTTPRoute, TLSRoute, TCPRoute and UDPRoute.
 */
import type { K8sObject } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import { Context, generationOf, nsOf } from './context.ts'
import { listenerAcceptsRoutes, listenerSetAccepted, type GatewayState, type ListenerSetState, type ListenerState } from './gateway.ts'
import { intersectHostnames, isValidHostname } from './hostnames.ts'
import { COND, GATEWAY_GROUP, REASON } from './reasons.ts'
import { selectorMatches } from './selector.ts'
import type { Condition } from './types.ts'
import { int, list, objs, str } from './util.ts'

export interface Attachment {
  readonly gateway: GatewayState
  readonly listener: ListenerState
  /** Hostnames the route serves on this listener ("*" = any); empty for TCP/UDP. */
  readonly hostnames: readonly string[]
}

export interface ParentResult {
  /** The parentRef as given, with group/kind defaulted as the API server would. */
  readonly parentRef: Record<string, unknown>
  readonly gateway: GatewayState
  readonly accepted: Condition
  readonly attachments: readonly Attachment[]
}

/** Route kinds whose hostnames intersect with listener hostnames. */
const HOSTNAME_KINDS = new Set(['HTTPRoute', 'GRPCRoute', 'TLSRoute'])

export function routeHostnames(route: K8sObject): string[] {
  return list(route.spec?.hostnames)
    .filter((h): h is string => typeof h === 'string')
    .map((h) => h.toLowerCase())
}

function namespaceAllowed(ctx: Context, l: ListenerState, routeNs: string): boolean {
  // "Same" is the namespace of whoever declares the listener: the Gateway or the ListenerSet
  const gwNs = nsOf(l.listenerSet ?? l.gateway)
  switch (l.allowedNamespaces.from) {
    case 'All':
      return true
    case 'Same':
      return routeNs === gwNs
    case 'Selector':
      return selectorMatches(l.allowedNamespaces.selector, ctx.namespaceLabels(routeNs))
    default:
      return false
  }
}

/**
 * Resolves every parentRef of a route that names one of our Gateways. Parents that are not
 * ours get no entry (another controller owns that part of the status).
 */
/** ListenerSets by "<ns>/<name>", once per Gateway map (a world's Gateways never change). */
const setIndexes = new WeakMap<ReadonlyMap<string, GatewayState>, Map<string, ListenerSetState>>()
function listenerSetsOf(gateways: ReadonlyMap<string, GatewayState>): Map<string, ListenerSetState> {
  let index = setIndexes.get(gateways)
  if (!index) {
    index = new Map()
    for (const g of gateways.values()) for (const s of g.listenerSets ?? []) index.set(s.key, s)
    setIndexes.set(gateways, index)
  }
  return index
}

export function resolveParents(ctx: Context, route: K8sObject, gateways: ReadonlyMap<string, GatewayState>): ParentResult[] {
  const routeNs = nsOf(route)
  const gen = generationOf(route)
  const hosts = routeHostnames(route)
  const badHost = hosts.find((h) => !isValidHostname(h))
  const results: ParentResult[] = []
  const seen = new Set<string>()
  for (const ref of objs(route.spec?.parentRefs)) {
    const group = str(ref.group) ?? GATEWAY_GROUP
    const kind = str(ref.kind) ?? 'Gateway'
    const name = str(ref.name)
    if (group !== GATEWAY_GROUP || (kind !== 'Gateway' && kind !== 'ListenerSet') || !name) continue
    const gwNs = str(ref.namespace) ?? routeNs
    // a ListenerSet parent: its own listeners only, under its Gateway (not ours: no entry)
    const set = kind === 'ListenerSet' ? listenerSetsOf(gateways).get(`${gwNs}/${name}`) : undefined
    const gateway = kind === 'ListenerSet' ? set?.gateway : gateways.get(`${gwNs}/${name}`)
    if (!gateway) continue
    const parentName = `${kind} ${gwNs}/${name}`
    const sectionName = str(ref.sectionName)
    const port = int(ref.port)
    const parentRef: Record<string, unknown> = { group, kind }
    if (ref.namespace !== undefined) parentRef.namespace = ref.namespace
    parentRef.name = name
    if (sectionName !== undefined) parentRef.sectionName = sectionName
    if (port !== undefined) parentRef.port = port
    const dedupe = JSON.stringify(parentRef)
    if (seen.has(dedupe)) continue
    seen.add(dedupe)

    const reject = (reason: string, message: string): ParentResult => ({
      parentRef,
      gateway,
      accepted: condition(COND.Accepted, 'False', reason, message, gen),
      attachments: [],
    })

    if (set && !listenerSetAccepted(set)) {
      results.push(reject(REASON.NotAllowedByListeners, `${parentName} is not accepted by Gateway ${gateway.key}`))
      continue
    }
    const candidates = (set ? set.listeners : gateway.listeners).filter((l) => (sectionName === undefined || l.name === sectionName) && (port === undefined || l.port === port))
    if (candidates.length === 0) {
      results.push(reject(REASON.NoMatchingParent, `${parentName} has no listener${sectionName ? ` named ${sectionName}` : ''}${port ? ` on port ${port}` : ''}`))
      continue
    }
    const allowed = candidates.filter(
      (l) => listenerAcceptsRoutes(gateway, l) && l.supportedKinds.some((k) => k.kind === route.kind) && namespaceAllowed(ctx, l, routeNs),
    )
    if (allowed.length === 0) {
      results.push(reject(REASON.NotAllowedByListeners, `no listener of ${parentName} allows this ${route.kind} (protocol, allowedRoutes kinds or namespaces)`))
      continue
    }
    if (badHost !== undefined) {
      results.push(reject(REASON.UnsupportedValue, `invalid hostname ${badHost}`))
      continue
    }
    const attachments: Attachment[] = []
    for (const l of allowed) {
      const hostnames = HOSTNAME_KINDS.has(route.kind) ? intersectHostnames(l.hostname, hosts) : []
      if (HOSTNAME_KINDS.has(route.kind) && hostnames.length === 0) continue
      attachments.push({ gateway, listener: l, hostnames })
    }
    if (attachments.length === 0) {
      results.push(reject(REASON.NoMatchingListenerHostname, 'no listener hostname intersects the route hostnames'))
      continue
    }
    results.push({ parentRef, gateway, accepted: condition(COND.Accepted, 'True', REASON.Accepted, 'Route is accepted', gen), attachments })
  }
  return results
}

/** The listeners a route counts in their attachedRoutes: each once, however many parentRefs reach it. */
export function attachedListeners(parents: readonly ParentResult[]): ListenerState[] {
  const counted = new Set<ListenerState>()
  for (const p of parents) {
    if (p.accepted.status !== 'True') continue
    for (const a of p.attachments) counted.add(a.listener)
  }
  return [...counted]
}

/** status.parents for a route; `override` replaces Accepted=True (e.g. unsupported filters). */
export function routeParentsStatus(
  parents: readonly ParentResult[],
  controllerName: string,
  resolvedRefs: Condition,
  override?: Condition,
): Record<string, unknown>[] {
  return parents.map((p) => ({
    parentRef: p.parentRef,
    controllerName,
    conditions: [override && p.accepted.status === 'True' ? override : p.accepted, resolvedRefs],
  }))
}
