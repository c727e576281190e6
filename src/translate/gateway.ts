/**
 * GatewayClasses, Gateways and their listeners: which are ours, which listeners are valid,
 * which conflict (within a Gateway and across Gateways sharing a port), and the TLS material
 * each listener serves. Route attachment fills in `attachedRoutes` later; `gatewayStatus`
 * then renders everything as Kubernetes status.
 */
import { isIP } from 'node:net'
import type { ListenerTls } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import { Context, generationOf, nsOf } from './context.ts'
import { isValidHostname } from './hostnames.ts'
import { COND, GATEWAY_GROUP, REASON } from './reasons.ts'
import { isReferenceAllowed } from './reference-grant.ts'
import { caBundleFromConfigMap, certificateFromSecret } from './tls.ts'
import type { Condition } from './types.ts'
import { selectorMatches } from './selector.ts'
import { cmp, int, obj, objs, str, timestampOf } from './util.ts'

export interface RouteKind {
  readonly group: string
  readonly kind: string
}

/** Route kinds a listener accepts by default, and the only ones it may accept at all. */
const KINDS_BY_PROTOCOL: Record<string, readonly string[]> = {
  HTTP: ['HTTPRoute', 'GRPCRoute'],
  HTTPS: ['HTTPRoute', 'GRPCRoute'],
  TLS: ['TLSRoute'],
  TCP: ['TCPRoute'],
  UDP: ['UDPRoute'],
}

interface Problem {
  readonly reason: string
  readonly message: string
}

export interface ListenerState {
  readonly gateway: K8sObject
  /** Set for a listener that a ListenerSet adds to the Gateway (the set owns it). */
  readonly listenerSet?: K8sObject
  /** "<ns>/<name>" of the Gateway. */
  readonly gatewayKey: string
  readonly index: number
  readonly name: string
  readonly port: number
  readonly protocol: string
  readonly hostname?: string
  /** TLS listeners only. */
  readonly tlsMode?: 'Terminate' | 'Passthrough'
  /** "gateway/<ns>/<name>/<listener>", or "listenerset/<ns>/<set>/<listener>" */
  readonly id: string
  /** Valid route kinds (status.supportedKinds). */
  supportedKinds: RouteKind[]
  readonly allowedNamespaces: { readonly from: string; readonly selector?: unknown }
  /** Terminating listeners: the certificates (and client validation) to serve. */
  tls?: ListenerTls
  /** Set when the listener cannot be accepted (UnsupportedProtocol, conflicts, ...). */
  notAccepted?: Problem
  conflicted?: Problem
  /** ResolvedRefs problems (certificates, CA refs, route kinds); first one is reported. */
  readonly refProblems: Problem[]
  /** Why the listener cannot be programmed although it may be accepted (no usable certificate). */
  notProgrammed?: string
  attachedRoutes: number
}

export interface GatewayState {
  readonly gateway: K8sObject
  readonly key: string
  readonly listeners: ListenerState[]
  /** Accepted=False reason at Gateway level (parametersRef, addresses), if any. */
  readonly rejected?: Problem
  /** Programmed=False because of addresses. */
  readonly addressProblem?: Problem
  readonly addresses: { type: string; value: string }[]
  /** ListenerSets whose parentRef names this Gateway, in precedence order (oldest first). */
  listenerSets?: ListenerSetState[]
}

/** A ListenerSet (gateway.networking.k8s.io/v1) whose parentRef names one of our Gateways. */
export interface ListenerSetState {
  readonly set: K8sObject
  /** "<ns>/<name>" of the ListenerSet. */
  readonly key: string
  readonly gateway: GatewayState
  /** Empty when the Gateway does not allow this set (notAllowed). */
  readonly listeners: ListenerState[]
  /** The Gateway's allowedListeners does not admit this set's namespace. */
  readonly notAllowed?: Problem
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

// ---------------------------------------------------------------- GatewayClass

/** Status of our GatewayClasses; returns the names of those that are ours. */
export function gatewayClasses(ctx: Context, status: Record<string, Record<string, unknown>>): Set<string> {
  const ours = new Set<string>()
  for (const gc of ctx.view.gatewayClasses) {
    if (str(gc.spec?.controllerName) !== ctx.opts.controllerName) continue
    ours.add(gc.metadata.name)
    const gen = generationOf(gc)
    // Portico has no GatewayClass parameters; a parametersRef cannot be honoured.
    const accepted = gc.spec?.parametersRef
      ? condition(COND.Accepted, 'False', REASON.InvalidParameters, 'Portico does not support GatewayClass parametersRef', gen)
      : condition(COND.Accepted, 'True', REASON.Accepted, 'Handled by Portico', gen)
    const conditions = [accepted, condition(COND.SupportedVersion, 'True', REASON.SupportedVersion, 'Gateway API v1 is supported', gen)]
    status[`GatewayClass//${gc.metadata.name}`] = { conditions }
  }
  return ours
}

// ---------------------------------------------------------------- Gateways

/** Oldest first, then by namespace/name: the order in which Gateways claim ports. */
export function gatewayOrder(a: K8sObject, b: K8sObject): number {
  return timestampOf(a.metadata.creationTimestamp) - timestampOf(b.metadata.creationTimestamp) || cmp(`${nsOf(a)}/${a.metadata.name}`, `${nsOf(b)}/${b.metadata.name}`)
}

export function buildGateways(ctx: Context, ourClasses: ReadonlySet<string>): GatewayState[] {
  const gateways = ctx.view.gateways.filter((g) => ourClasses.has(str(g.spec?.gatewayClassName) ?? '')).sort(gatewayOrder)
  const states = gateways.map((g) => {
    try {
      return buildGateway(ctx, g)
    } catch (e) {
      // a bug meeting odd input costs this Gateway only: reported, nothing served
      const message = `internal error translating this Gateway: ${e instanceof Error ? e.message : String(e)}`
      return { gateway: g, key: `${nsOf(g)}/${g.metadata.name}`, listeners: [], rejected: { reason: REASON.Invalid, message }, addresses: [] }
    }
  })
  attachListenerSets(ctx, states)
  detectConflicts(states)
  return states
}

// ---------------------------------------------------------------- ListenerSets

/**
 * ListenerSets join the Gateway their parentRef names when its spec.allowedListeners admits
 * their namespace (None by default, Same, All, Selector). Sets of other controllers' Gateways
 * (or of no Gateway we know) get no state: not our status to write.
 */
function attachListenerSets(ctx: Context, gateways: GatewayState[]): void {
  const byKey = new Map(gateways.map((g) => [g.key, g]))
  const sets = [...(ctx.view.listenerSets ?? [])].sort(gatewayOrder)
  for (const set of sets) {
    const ref = obj(set.spec?.parentRef)
    if (!ref) continue
    if ((str(ref.group) ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (str(ref.kind) ?? 'Gateway') !== 'Gateway') continue
    const setNs = nsOf(set)
    const g = byKey.get(`${str(ref.namespace) ?? setNs}/${str(ref.name) ?? ''}`)
    if (!g) continue
    const key = `${setNs}/${set.metadata.name}`
    g.listenerSets ??= []
    const allowed = obj(obj(g.gateway.spec?.allowedListeners)?.namespaces)
    const from = str(allowed?.from) ?? 'None'
    const gwNs = nsOf(g.gateway)
    const admitted = from === 'All' || (from === 'Same' && setNs === gwNs) || (from === 'Selector' && selectorMatches(allowed?.selector, ctx.namespaceLabels(setNs)))
    if (!admitted) {
      const message = from === 'None' ? `Gateway ${g.key} does not allow ListenerSets (spec.allowedListeners)` : `Gateway ${g.key} does not allow ListenerSets from namespace ${setNs} (allowedListeners.namespaces.from ${from})`
      g.listenerSets.push({ set, key, gateway: g, listeners: [], notAllowed: { reason: 'NotAllowed', message } })
      continue
    }
    const listeners = objs(set.spec?.listeners).map((l, i) => buildListener(ctx, g.gateway, g.key, l, i, set))
    g.listenerSets.push({ set, key, gateway: g, listeners })
  }
}

/** The set is accepted: allowed, its Gateway accepted, and at least one of its listeners valid. */
export function listenerSetAccepted(s: ListenerSetState): boolean {
  return !s.notAllowed && !s.gateway.rejected && s.listeners.some((l) => !l.notAccepted && !l.conflicted)
}

/** A Gateway's own listeners followed by those of its accepted ListenerSets, in precedence order. */
export function allListeners(g: GatewayState): ListenerState[] {
  const out = [...g.listeners]
  for (const s of g.listenerSets ?? []) if (!s.notAllowed) out.push(...s.listeners)
  return out
}

function buildGateway(ctx: Context, gw: K8sObject): GatewayState {
  const ns = nsOf(gw)
  const key = `${ns}/${gw.metadata.name}`
  const listeners = objs(gw.spec?.listeners).map((l, i) => buildListener(ctx, gw, key, l, i))
  let rejected: Problem | undefined
  if (obj(gw.spec?.infrastructure)?.parametersRef !== undefined)
    rejected = { reason: REASON.InvalidParameters, message: 'Portico does not support spec.infrastructure.parametersRef' }
  const addr = gatewayAddresses(ctx, gw)
  if (!rejected && addr.unsupported) rejected = addr.unsupported
  return { gateway: gw, key, listeners, rejected, addressProblem: addr.unusable, addresses: addr.addresses }
}

/**
 * spec.addresses: IPAddress and Hostname types are supported. An empty value asks us to pick
 * one (the default address); an IP this host does not own cannot be served (AddressNotUsable).
 */
function gatewayAddresses(ctx: Context, gw: K8sObject) {
  const fallback = ctx.opts.defaultAddress ?? '127.0.0.1'
  const local = new Set(ctx.opts.localAddresses ?? [])
  const isLocal = (ip: string) => local.has(ip) || LOOPBACK_V4.test(ip) || ip === '::1' || ip === '0.0.0.0' || ip === '::'
  const requested = objs(gw.spec?.addresses)
  if (requested.length === 0) return { addresses: [{ type: 'IPAddress', value: fallback }] }
  const addresses: { type: string; value: string }[] = []
  let unsupported: Problem | undefined
  let unusable: Problem | undefined
  for (const a of requested) {
    const type = str(a.type) ?? 'IPAddress'
    const value = str(a.value) ?? ''
    if (type !== 'IPAddress' && type !== 'Hostname') {
      unsupported ??= { reason: REASON.UnsupportedAddress, message: `address type ${type} is not supported` }
      continue
    }
    if (value === '') {
      addresses.push({ type: 'IPAddress', value: fallback })
      continue
    }
    if (type === 'IPAddress') {
      if (isIP(value) === 0) {
        unsupported ??= { reason: REASON.UnsupportedAddress, message: `${value} is not an IP address` }
        continue
      }
      if (!isLocal(value)) {
        unusable ??= { reason: REASON.AddressNotUsable, message: `${value} is not an address of this host` }
        continue
      }
    } else if (!isValidHostname(value.toLowerCase())) {
      unsupported ??= { reason: REASON.UnsupportedAddress, message: `${value} is not a valid hostname` }
      continue
    }
    addresses.push({ type, value })
  }
  const seen = new Set<string>()
  const unique = addresses.filter((a) => !seen.has(`${a.type}/${a.value}`) && seen.add(`${a.type}/${a.value}`))
  return { addresses: unique, unsupported, unusable }
}

// ---------------------------------------------------------------- listeners

function buildListener(ctx: Context, gw: K8sObject, gatewayKey: string, l: Record<string, unknown>, index: number, set?: K8sObject): ListenerState {
  const name = str(l.name) ?? `listener-${index}`
  const protocol = str(l.protocol) ?? ''
  const rawHost = str(l.hostname)
  const tlsCfg = obj(l.tls)
  const allowed = obj(l.allowedRoutes)
  const nsCfg = obj(allowed?.namespaces)
  const state: ListenerState = {
    gateway: gw,
    ...(set ? { listenerSet: set } : {}),
    gatewayKey,
    index,
    name,
    port: int(l.port) ?? 0,
    protocol,
    hostname: protocol === 'TCP' || protocol === 'UDP' ? undefined : rawHost?.toLowerCase(),
    tlsMode: protocol === 'TLS' ? (str(tlsCfg?.mode) === 'Passthrough' ? 'Passthrough' : 'Terminate') : undefined,
    id: set ? `listenerset/${nsOf(set)}/${set.metadata.name}/${name}` : `gateway/${gatewayKey}/${name}`,
    supportedKinds: [],
    allowedNamespaces: { from: str(nsCfg?.from) ?? 'Same', selector: nsCfg?.selector },
    refProblems: [],
    attachedRoutes: 0,
  }

  const validKinds = KINDS_BY_PROTOCOL[protocol]
  if (!validKinds) {
    state.notAccepted = { reason: REASON.UnsupportedProtocol, message: `protocol ${protocol} is not supported` }
    return state
  }
  if (state.port < 1 || state.port > 65535) {
    state.notAccepted = { reason: REASON.UnsupportedValue, message: 'port must be 1-65535' }
    return state
  }
  if ((l.hostname !== undefined && typeof l.hostname !== 'string') || (state.hostname !== undefined && !isValidHostname(state.hostname))) {
    state.notAccepted = { reason: REASON.UnsupportedValue, message: `invalid hostname ${rawHost ?? String(l.hostname)}` }
    return state
  }

  // allowedRoutes.kinds: keep the valid ones; any invalid one makes ResolvedRefs False
  const kinds = objs(allowed?.kinds)
  if (allowed?.kinds === undefined || (Array.isArray(allowed.kinds) && kinds.length === 0)) {
    state.supportedKinds = validKinds.map((kind) => ({ group: GATEWAY_GROUP, kind }))
  } else {
    const invalid: string[] = []
    for (const k of kinds) {
      const group = str(k.group) ?? GATEWAY_GROUP
      const kind = str(k.kind) ?? ''
      if (group === GATEWAY_GROUP && validKinds.includes(kind)) {
        if (!state.supportedKinds.some((s) => s.kind === kind)) state.supportedKinds.push({ group, kind })
      } else invalid.push(`${group}/${kind}`)
    }
    if (invalid.length)
      state.refProblems.push({ reason: REASON.InvalidRouteKinds, message: `route kinds not supported on a ${protocol} listener: ${invalid.join(', ')}` })
  }
  if (!['Same', 'All', 'Selector', 'None'].includes(state.allowedNamespaces.from))
    state.refProblems.push({ reason: REASON.UnsupportedValue, message: `allowedRoutes.namespaces.from ${state.allowedNamespaces.from} is not supported` })

  const terminates = protocol === 'HTTPS' || (protocol === 'TLS' && state.tlsMode === 'Terminate')
  if (protocol === 'HTTPS' && str(tlsCfg?.mode) === 'Passthrough') {
    state.notAccepted = { reason: REASON.UnsupportedValue, message: 'HTTPS listeners terminate TLS; use protocol TLS for Passthrough' }
    return state
  }
  if (terminates) resolveListenerTls(ctx, gw, state, tlsCfg)
  return state
}

/** certificateRefs → certificates; Gateway spec.tls.frontend → client certificate validation. */
function resolveListenerTls(ctx: Context, gw: K8sObject, state: ListenerState, tlsCfg: Record<string, unknown> | undefined): void {
  // a ListenerSet's certificateRefs are read from its own namespace, granted to kind ListenerSet
  const ns = nsOf(state.listenerSet ?? gw)
  const fromKind = state.listenerSet ? 'ListenerSet' : 'Gateway'
  const certificates: { certPem: string; keyPem: string }[] = []
  const refs = objs(tlsCfg?.certificateRefs)
  if (refs.length === 0) state.refProblems.push({ reason: REASON.InvalidCertificateRef, message: 'a TLS-terminating listener needs tls.certificateRefs' })
  for (const ref of refs) {
    const group = str(ref.group) ?? ''
    const kind = str(ref.kind) ?? 'Secret'
    const name = str(ref.name) ?? ''
    const refNs = str(ref.namespace) ?? ns
    if (group !== '' || kind !== 'Secret') {
      state.refProblems.push({ reason: REASON.InvalidCertificateRef, message: `certificateRef ${group ? `${group}/` : ''}${kind} ${name}: only core Secrets are supported` })
      continue
    }
    if (!isReferenceAllowed({ group: GATEWAY_GROUP, kind: fromKind, namespace: ns }, { group: '', kind: 'Secret', namespace: refNs, name }, ctx.view.referenceGrants)) {
      state.refProblems.push({ reason: REASON.RefNotPermitted, message: `certificateRef to Secret ${refNs}/${name} is not permitted by any ReferenceGrant` })
      continue
    }
    const secret = ctx.secret(refNs, name)
    if (!secret) {
      state.refProblems.push({ reason: REASON.InvalidCertificateRef, message: `Secret ${refNs}/${name} not found` })
      continue
    }
    const pair = certificateFromSecret(secret)
    if (typeof pair === 'string') {
      state.refProblems.push({ reason: REASON.InvalidCertificateRef, message: `Secret ${refNs}/${name}: ${pair}` })
      continue
    }
    certificates.push({ certPem: pair.certPem, keyPem: pair.keyPem })
  }
  if (certificates.length === 0) {
    state.notProgrammed = 'no valid TLS certificate'
    return
  }
  const tls: { certificates: typeof certificates; clientValidation?: ListenerTls['clientValidation'] } = { certificates }

  // Frontend validation: a perPort entry for this port overrides the default.
  const frontend = obj(obj(gw.spec?.tls)?.frontend)
  const perPort = objs(frontend?.perPort).find((p) => int(p.port) === state.port)
  const validation = obj(perPort ? obj(perPort.tls)?.validation : obj(frontend?.default)?.validation)
  if (validation) {
    const bundles: string[] = []
    const caRefs = objs(validation.caCertificateRefs)
    for (const ref of caRefs) {
      const group = str(ref.group) ?? ''
      const kind = str(ref.kind) ?? 'ConfigMap'
      const name = str(ref.name) ?? ''
      const refNs = str(ref.namespace) ?? ns
      if (group !== '' || kind !== 'ConfigMap') {
        state.refProblems.push({ reason: REASON.InvalidCACertificateKind, message: `caCertificateRef ${group ? `${group}/` : ''}${kind} ${name}: only ConfigMaps are supported` })
        continue
      }
      if (!isReferenceAllowed({ group: GATEWAY_GROUP, kind: 'Gateway', namespace: ns }, { group: '', kind: 'ConfigMap', namespace: refNs, name }, ctx.view.referenceGrants)) {
        state.refProblems.push({ reason: REASON.RefNotPermitted, message: `caCertificateRef to ConfigMap ${refNs}/${name} is not permitted by any ReferenceGrant` })
        continue
      }
      const cm = ctx.configMap(refNs, name)
      const bundle = cm ? caBundleFromConfigMap(cm) : { error: 'not found' }
      if (typeof bundle !== 'string') {
        state.refProblems.push({ reason: REASON.InvalidCACertificateRef, message: `ConfigMap ${refNs}/${name}: ${bundle.error}` })
        continue
      }
      bundles.push(bundle)
    }
    if (bundles.length === 0) {
      // serving without the requested client validation would be a silent security downgrade
      state.notAccepted = { reason: REASON.NoValidCACertificate, message: 'client certificate validation has no valid CA certificate' }
      return
    }
    const mode = str(validation.mode) === 'AllowInsecureFallback' ? 'AllowInsecureFallback' : 'AllowValidOnly'
    tls.clientValidation = { caPem: bundles.join(''), mode }
  }
  state.tls = tls
}

// ---------------------------------------------------------------- conflicts

/** What a port speaks; listeners on one port must agree (UDP lives beside the TCP family). */
function portFamily(l: ListenerState): { transport: 'tcp' | 'udp'; family: string } {
  if (l.protocol === 'UDP') return { transport: 'udp', family: 'UDP' }
  // Terminate and Passthrough share a port (TLSRouteModeMixed): the SNI picks which one serves
  if (l.protocol === 'TLS') return { transport: 'tcp', family: 'TLS' }
  return { transport: 'tcp', family: l.protocol }
}

/** TCP and UDP carry no hostname: two such listeners on one port always collide. */
const hostKey = (l: ListenerState) => (l.protocol === 'TCP' || l.protocol === 'UDP' ? '<any>' : (l.hostname ?? ''))

function detectConflicts(gateways: readonly GatewayState[]): void {
  const conflict = (l: ListenerState, reason: string, message: string) => {
    l.conflicted ??= { reason, message }
  }
  // Within a Gateway every listener in a conflicting set is marked: none is "first".
  for (const g of gateways) {
    const byPort = new Map<string, ListenerState[]>()
    for (const l of g.listeners) {
      if (l.notAccepted) continue
      const k = `${portFamily(l).transport}/${l.port}`
      byPort.set(k, [...(byPort.get(k) ?? []), l])
    }
    for (const group of byPort.values()) {
      const families = new Set(group.map((l) => portFamily(l).family))
      if (families.size > 1) {
        for (const l of group) conflict(l, REASON.ProtocolConflict, `port ${l.port} is used with different protocols (${[...families].sort().join(', ')})`)
        continue
      }
      const byHost = new Map<string, ListenerState[]>()
      for (const l of group) byHost.set(hostKey(l), [...(byHost.get(hostKey(l)) ?? []), l])
      for (const same of byHost.values())
        if (same.length > 1) for (const l of same) conflict(l, REASON.HostnameConflict, `listeners ${same.map((x) => x.name).join(', ')} share port ${l.port} and hostname`)
    }
  }
  // ListenerSet listeners come after the Gateway's own and after those of older sets: the first
  // listener to claim a port (and hostname) keeps it, a later one that disagrees is conflicted.
  for (const g of gateways) {
    const held = new Map<string, { family: string; hosts: Set<string> }>()
    const claim = (l: ListenerState) => {
      const { transport, family } = portFamily(l)
      const k = `${transport}/${l.port}`
      const h = held.get(k) ?? { family, hosts: new Set<string>() }
      h.hosts.add(hostKey(l))
      held.set(k, h)
    }
    for (const l of g.listeners) if (!l.notAccepted && !l.conflicted) claim(l)
    for (const s of g.listenerSets ?? []) {
      for (const l of s.listeners) {
        if (l.notAccepted) continue
        const { transport, family } = portFamily(l)
        const h = held.get(`${transport}/${l.port}`)
        if (h && h.family !== family) conflict(l, REASON.ProtocolConflict, `port ${l.port} is already used for ${h.family} by Gateway ${g.key} or an older ListenerSet`)
        else if (h && h.hosts.has(hostKey(l))) conflict(l, REASON.HostnameConflict, `port ${l.port} and hostname are already used by Gateway ${g.key} or an older ListenerSet`)
        else claim(l)
      }
    }
  }
  // Across Gateways the older Gateway keeps the port (gateways are sorted oldest first).
  const claims = new Map<string, { family: string; hosts: Set<string>; owner: string }>()
  for (const g of gateways) {
    const mine = new Map<string, { family: string; hosts: Set<string> }>()
    for (const l of allListeners(g)) {
      if (l.notAccepted || l.conflicted) continue
      const { transport, family } = portFamily(l)
      const k = `${transport}/${l.port}`
      const claim = claims.get(k)
      if (claim && claim.owner !== g.key) {
        if (claim.family !== family) conflict(l, REASON.ProtocolConflict, `port ${l.port} is already used for ${claim.family} by Gateway ${claim.owner}`)
        else if (claim.hosts.has(hostKey(l))) conflict(l, REASON.HostnameConflict, `port ${l.port} and hostname are already used by Gateway ${claim.owner}`)
        if (l.conflicted) continue
      }
      const m = mine.get(k) ?? { family, hosts: new Set<string>() }
      m.hosts.add(hostKey(l))
      mine.set(k, m)
    }
    for (const [k, m] of mine) {
      const claim = claims.get(k)
      if (claim) for (const h of m.hosts) claim.hosts.add(h)
      else claims.set(k, { ...m, owner: g.key })
    }
  }
}

// ---------------------------------------------------------------- readiness helpers

/** Routes may attach: the Gateway and the listener are accepted and not conflicted. */
export function listenerAcceptsRoutes(g: GatewayState, l: ListenerState): boolean {
  return !g.rejected && !l.notAccepted && !l.conflicted
}

/** The listener goes into the IR. */
export function listenerProgrammed(g: GatewayState, l: ListenerState): boolean {
  return listenerAcceptsRoutes(g, l) && !g.addressProblem && !l.notProgrammed && l.supportedKinds.length > 0
}

// ---------------------------------------------------------------- status

export function gatewayStatus(g: GatewayState): Record<string, unknown> {
  const gen = generationOf(g.gateway)
  const listeners = g.listeners.map((l) => listenerStatus(g, l, gen))
  const acceptedCount = g.listeners.filter((l) => !l.notAccepted && !l.conflicted).length
  const programmedCount = g.listeners.filter((l) => listenerProgrammed(g, l)).length

  let accepted: Condition
  if (g.rejected) accepted = condition(COND.Accepted, 'False', g.rejected.reason, g.rejected.message, gen)
  else if (acceptedCount === 0) accepted = condition(COND.Accepted, 'False', REASON.ListenersNotValid, 'no listener is valid', gen)
  else if (acceptedCount < g.listeners.length)
    accepted = condition(COND.Accepted, 'True', REASON.ListenersNotValid, `${g.listeners.length - acceptedCount} of ${g.listeners.length} listeners are not valid`, gen)
  else accepted = condition(COND.Accepted, 'True', REASON.Accepted, 'Gateway is accepted', gen)

  let programmed: Condition
  if (accepted.status === 'False') programmed = condition(COND.Programmed, 'False', REASON.Invalid, 'Gateway is not accepted', gen)
  else if (g.addressProblem) programmed = condition(COND.Programmed, 'False', g.addressProblem.reason, g.addressProblem.message, gen)
  else if (programmedCount === 0) programmed = condition(COND.Programmed, 'False', REASON.Invalid, 'no listener is programmed', gen)
  else programmed = condition(COND.Programmed, 'True', REASON.Programmed, 'Gateway is programmed', gen)

  const insecure = insecureFrontendValidation(g.gateway, gen)
  const out: Record<string, unknown> = { addresses: g.addresses, conditions: [accepted, programmed, ...insecure], listeners }
  // ListenerSets: reported on Gateways that allow them or that some ListenerSet names
  if (g.gateway.spec?.allowedListeners !== undefined || (g.listenerSets?.length ?? 0) > 0) {
    const sets = g.listenerSets ?? []
    const attached = sets.filter(listenerSetAccepted).length
    out.attachedListenerSets = attached
    out.conditions = [
      accepted,
      programmed,
      attached > 0
        ? condition('AttachedListenerSets', 'True', 'ListenerSetsAttached', `${attached} ListenerSet${attached === 1 ? ' is' : 's are'} attached`, gen)
        : sets.some((s) => s.notAllowed)
          ? condition('AttachedListenerSets', 'False', 'ListenerSetsNotAllowed', 'ListenerSets name this Gateway but spec.allowedListeners does not admit them', gen)
          : condition('AttachedListenerSets', 'False', 'NoListenerSetsAttached', 'no ListenerSet is attached', gen),
      ...insecure,
    ]
  }
  return out
}

/**
 * GEP-91: while spec.tls.frontend (default or a perPort override) asks for AllowInsecureFallback,
 * the Gateway carries InsecureFrontendValidationMode=True/ConfigurationChanged; absent otherwise.
 */
function insecureFrontendValidation(gw: K8sObject, gen: number | undefined): Condition[] {
  const frontend = obj(obj(gw.spec?.tls)?.frontend)
  if (!frontend) return []
  const ports = objs(frontend.perPort)
    .filter((p) => str(obj(obj(p.tls)?.validation)?.mode) === 'AllowInsecureFallback')
    .map((p) => int(p.port))
  const viaDefault = str(obj(obj(frontend.default)?.validation)?.mode) === 'AllowInsecureFallback'
  if (!viaDefault && ports.length === 0) return []
  const where = [viaDefault ? 'the default' : '', ports.length ? `port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}` : ''].filter(Boolean).join(' and ')
  return [
    condition(
      COND.InsecureFrontendValidationMode,
      'True',
      REASON.ConfigurationChanged,
      `client certificate validation for ${where} is AllowInsecureFallback: connections without a valid client certificate are accepted`,
      gen,
    ),
  ]
}

/** status of a ListenerSet: Accepted, Programmed and one entry per listener (ListenerEntryStatus). */
export function listenerSetStatus(s: ListenerSetState): Record<string, unknown> {
  const gen = generationOf(s.set)
  const g = s.gateway
  if (s.notAllowed)
    return {
      conditions: [condition(COND.Accepted, 'False', s.notAllowed.reason, s.notAllowed.message, gen), condition(COND.Programmed, 'False', s.notAllowed.reason, s.notAllowed.message, gen)],
      listeners: [],
    }
  const listeners = s.listeners.map((l) => listenerStatus(g, l, gen))
  const valid = s.listeners.filter((l) => !l.notAccepted && !l.conflicted).length
  const programmedCount = s.listeners.filter((l) => listenerProgrammed(g, l)).length
  let accepted: Condition
  let programmed: Condition
  if (g.rejected) {
    accepted = condition(COND.Accepted, 'False', 'ParentNotAccepted', `Gateway ${g.key} is not accepted`, gen)
    programmed = condition(COND.Programmed, 'False', 'ParentNotProgrammed', `Gateway ${g.key} is not accepted`, gen)
  } else if (valid === 0) {
    accepted = condition(COND.Accepted, 'False', REASON.ListenersNotValid, 'no listener is valid', gen)
    programmed = condition(COND.Programmed, 'False', REASON.ListenersNotValid, 'no listener is valid', gen)
  } else {
    accepted =
      valid < s.listeners.length
        ? condition(COND.Accepted, 'True', REASON.ListenersNotValid, `${s.listeners.length - valid} of ${s.listeners.length} listeners are not valid`, gen)
        : condition(COND.Accepted, 'True', REASON.Accepted, 'ListenerSet is accepted', gen)
    programmed =
      g.addressProblem
        ? condition(COND.Programmed, 'False', g.addressProblem.reason, g.addressProblem.message, gen)
        : programmedCount === 0
          ? condition(COND.Programmed, 'False', REASON.Invalid, 'no listener is programmed', gen)
          : condition(COND.Programmed, 'True', REASON.Programmed, 'ListenerSet is programmed', gen)
  }
  return { conditions: [accepted, programmed], listeners }
}

function listenerStatus(g: GatewayState, l: ListenerState, gen: number | undefined): Record<string, unknown> {
  const conds: Condition[] = []
  const reject = l.notAccepted ?? l.conflicted
  conds.push(reject ? condition(COND.Accepted, 'False', reject.reason, reject.message, gen) : condition(COND.Accepted, 'True', REASON.Accepted, 'Listener is accepted', gen))
  const programmed = listenerProgrammed(g, l)
  let why = ''
  if (!programmed) why = g.rejected ? 'Gateway is not accepted' : reject ? reject.message : g.addressProblem ? g.addressProblem.message : (l.notProgrammed ?? 'listener accepts no route kinds')
  // a ListenerSet listener that lost a conflict says so in Programmed too (ListenerEntryStatus)
  const notProgrammedReason = l.listenerSet && l.conflicted ? l.conflicted.reason : REASON.Invalid
  conds.push(programmed ? condition(COND.Programmed, 'True', REASON.Programmed, 'Listener is programmed', gen) : condition(COND.Programmed, 'False', notProgrammedReason, why, gen))
  const ref = l.refProblems[0]
  conds.push(ref ? condition(COND.ResolvedRefs, 'False', ref.reason, l.refProblems.map((p) => p.message).join('; '), gen) : condition(COND.ResolvedRefs, 'True', REASON.ResolvedRefs, 'All references are resolved', gen))
  conds.push(
    l.conflicted
      ? condition(COND.Conflicted, 'True', l.conflicted.reason, l.conflicted.message, gen)
      : condition(COND.Conflicted, 'False', REASON.NoConflicts, 'No conflicts', gen),
  )
  // A listener that cannot accept routes supports no kinds.
  const supportedKinds = l.notAccepted || l.conflicted ? [] : l.supportedKinds.map((k) => ({ group: k.group, kind: k.kind }))
  return { name: l.name, supportedKinds, attachedRoutes: l.attachedRoutes, conditions: conds }
}
