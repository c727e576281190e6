/**
 * backendRefs → pools. A reference resolves to a Service port (kind, ReferenceGrant, existence
 * and port checked, in the order the spec gives reasons for); resolved ports become pools of
 * ready EndpointSlice endpoints. Only referenced pools reach the snapshot.
 */
import { Sharer } from './share.ts'
import type { BackendPool, BackendTls, Endpoint } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'
import { Context, nsOf } from './context.ts'
import { GATEWAY_GROUP, REASON } from './reasons.ts'
import { isReferenceAllowed } from './reference-grant.ts'
import { SortedSet } from './sorted-set.ts'
import { sameObject, sameObjects } from './unchanged.ts'
import { cmp, int, list, obj, objs, str } from './util.ts'

/** How a pool is used: decides its protocol when the Service port does not. */
export type PoolUse = 'http' | 'tcp' | 'udp'

export interface RefProblem {
  readonly reason: string
  readonly message: string
  /** Not reported in the route's ResolvedRefs (another object's status carries it). */
  readonly silent?: boolean
}

/** `tls`: the Service port's BackendTLSPolicy effect, for L4 uses (TLSRoute on a Terminate listener re-encrypts with it). */
export type BackendResolution = { readonly pool: string; readonly tls?: BackendTls | { readonly invalid: string } } | { readonly problem: RefProblem }

/**
 * What resolving a route's references does to the translation as a whole: the Gateways now
 * routing to a Service (BackendTLSPolicy ancestors) and a pool in use. Recorded per route rather
 * than applied on the spot, so an unchanged route's effects can be kept, and a removed route's
 * taken back, without translating it again.
 */
export type BackendEffect =
  | { readonly users: string; readonly gateways: readonly string[] }
  | { readonly pool: string; readonly service: K8sObject; readonly port: Record<string, unknown>; readonly use: PoolUse }

/** Recorded effects of a route that resolved nothing (frozen: shared by every such route). */
const NO_EFFECTS = Object.freeze([]) as unknown as BackendEffect[]

interface PoolUsage {
  /** Registrations of one pool key all resolve the same (or an unchanged, sameObject) Service and port: they share a world. */
  readonly service: K8sObject
  readonly port: Record<string, unknown>
  /** Registrations per use; a pool exists while any is positive. */
  readonly counts: Record<PoolUse, number>
}

/**
 * The sum of recorded effects: pools in use and the Gateways routing to each Service, counted so
 * that effects can be added and taken back in any order (a route changed or removed). A fresh
 * translation adds every route's effects once; the Translator keeps one per world.
 */
export class BackendUsage {
  readonly #pools = new Map<string, PoolUsage>()
  readonly #keys = new SortedSet<string>(cmp)
  readonly #users = new Map<string, Map<string, number>>()

  apply(effects: readonly BackendEffect[], sign: 1 | -1): void {
    for (const e of effects) {
      if ('users' in e) {
        let users = this.#users.get(e.users)
        if (!users) this.#users.set(e.users, (users = new Map()))
        for (const g of e.gateways) {
          const n = (users.get(g) ?? 0) + sign
          if (n === 0) users.delete(g)
          else users.set(g, n)
        }
        if (users.size === 0) this.#users.delete(e.users)
      } else {
        let usage = this.#pools.get(e.pool)
        if (!usage) this.#pools.set(e.pool, (usage = { service: e.service, port: e.port, counts: { http: 0, tcp: 0, udp: 0 } }))
        usage.counts[e.use] += sign
        if (usage.counts.http === 0 && usage.counts.tcp === 0 && usage.counts.udp === 0) this.#pools.delete(e.pool)
        this.#keys.touch(e.pool)
      }
    }
  }

  /** Keys of the pools in use, sorted. */
  poolKeys(): readonly string[] {
    return this.#keys.items(
      (k) => this.#pools.has(k),
      () => this.#pools.keys(),
    )
  }

  pool(key: string): PoolUsage | undefined {
    return this.#pools.get(key)
  }

  /** Gateways (keys "<ns>/<name>") with a route to this Service ("<ns>/<name>"). */
  gatewaysUsing(service: string): Iterable<string> {
    return this.#users.get(service)?.keys() ?? []
  }
}

/**
 * Built pools of the previous translation, reused while their inputs are unchanged (sameObject):
 * the Service, how the pool is used, and the Service's EndpointSlices. Only valid while
 * the BackendTLSPolicies (and everything else a pool reads) are unchanged: the translator drops
 * it whenever anything but routes and EndpointSlices changed. Identical pool objects let compile()
 * keep the runtime pool too.
 */
export class PoolMemo {
  #prev = new Map<string, PoolMemoEntry>()
  #next = new Map<string, PoolMemoEntry>()

  get(key: string): PoolMemoEntry | undefined {
    return this.#prev.get(key)
  }

  set(key: string, entry: PoolMemoEntry): void {
    this.#next.set(key, entry)
  }

  /** Keeps only the pools the finished translation used. */
  rotate(): void {
    this.#prev = this.#next
    this.#next = new Map()
  }
}

interface PoolMemoEntry {
  readonly service: K8sObject
  readonly uses: string
  readonly slices: readonly K8sObject[]
  readonly pool: BackendPool
}

const KNOWN_APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'kubernetes.io/ws'])

export class Backends {
  readonly #ctx: Context
  readonly #usage: BackendUsage
  /** BackendTLSPolicy per "<ns>/<service>" (and "<ns>/<service>#<portName>"), filled by backend-tls.ts. */
  readonly tlsBySection = new Map<string, BackendTls | { invalid: string }>()
  readonly #memo: PoolMemo | undefined
  /** Where resolve() records its effects (see BackendEffect); absent: applied at once. */
  #log: BackendEffect[] | undefined
  /** Equal IR pieces of this translation's routes, shared (share.ts). */
  readonly sharer = new Sharer()
  readonly #sharedEffects = new Map<string, BackendEffect[]>()

  constructor(ctx: Context, usage = new BackendUsage(), memo?: PoolMemo) {
    this.#ctx = ctx
    this.#usage = usage
    this.#memo = memo
  }

  /** The translation's lookup tables (Composite resolution reads the view through it). */
  get context(): Context {
    return this.#ctx
  }

  /** Runs `fn` with resolve()'s effects recorded instead of applied; returns them. */
  recording(fn: () => void): BackendEffect[] {
    const log: BackendEffect[] = []
    const outer = this.#log
    this.#log = log
    try {
      fn()
    } finally {
      this.#log = outer
    }
    return this.#shareEffects(log)
  }

  /**
   * Routes of one translation that reference the same backends from the same Gateways record equal
   * effects: one list for all of them (each route's outcome keeps its effects; at 10,000 routes,
   * ~200 bytes each). Equal means equal strings and the very same Service and port objects.
   */
  #shareEffects(log: BackendEffect[]): BackendEffect[] {
    if (log.length === 0) return NO_EFFECTS
    const key = log.map((e) => ('users' in e ? `u ${e.users} ${e.gateways.join(' ')}` : `p ${e.pool} ${e.use}`)).join('\n')
    const held = this.#sharedEffects.get(key)
    if (held && held.every((e, i) => !('pool' in e) || (e.service === (log[i] as typeof e).service && e.port === (log[i] as typeof e).port))) return held
    if (!held) this.#sharedEffects.set(key, log)
    return log
  }

  /** Adds recorded effects to the usage. */
  apply(effects: readonly BackendEffect[]): void {
    this.#usage.apply(effects, 1)
  }

  #emit(effect: BackendEffect): void {
    if (this.#log) this.#log.push(effect)
    else this.#usage.apply([effect], 1)
  }

  /**
   * Resolves one backendRef of a route (or a mirror filter). `register` records the pool as
   * used; pass false to validate only (e.g. weight-0 refs still get status).
   */
  resolve(route: K8sObject, ref: Record<string, unknown>, use: PoolUse, gateways: readonly string[], register = true, fromGroup: string = GATEWAY_GROUP): BackendResolution {
    const routeNs = nsOf(route)
    const group = str(ref.group) ?? ''
    const kind = str(ref.kind) ?? 'Service'
    const name = str(ref.name) ?? ''
    const ns = str(ref.namespace) ?? routeNs
    if (group !== '' || kind !== 'Service') return { problem: { reason: REASON.InvalidKind, message: `backendRef kind ${group ? `${group}/` : ''}${kind} is not supported` } }
    // `route` may be another referrer (a Composite, group gateway.portico.dev): grants name its group
    if (!isReferenceAllowed({ group: fromGroup, kind: route.kind, namespace: routeNs }, { group: '', kind: 'Service', namespace: ns, name }, this.#ctx.view.referenceGrants))
      return { problem: { reason: REASON.RefNotPermitted, message: `backendRef to Service ${ns}/${name} is not permitted by any ReferenceGrant` } }
    const service = this.#ctx.service(ns, name)
    if (!service) return { problem: { reason: REASON.BackendNotFound, message: `Service ${ns}/${name} not found` } }
    // recorded before the port checks: a BackendTLSPolicy reports to every Gateway routing here
    if (register) this.#emit({ users: `${ns}/${name}`, gateways })
    const portNum = int(ref.port)
    if (portNum === undefined) return { problem: { reason: REASON.BackendNotFound, message: `backendRef to Service ${ns}/${name} needs a port` } }
    const port = objs(service.spec?.ports).find((p) => int(p.port) === portNum)
    if (!port) return { problem: { reason: REASON.BackendNotFound, message: `Service ${ns}/${name} has no port ${portNum}` } }
    const proto = str(port.protocol) ?? 'TCP'
    if ((use === 'udp') !== (proto === 'UDP'))
      return { problem: { reason: REASON.UnsupportedProtocol, message: `Service ${ns}/${name} port ${portNum} is ${proto}` } }
    const app = str(port.appProtocol)
    if (use === 'http' && app?.startsWith('kubernetes.io/') && !KNOWN_APP_PROTOCOLS.has(app))
      return { problem: { reason: REASON.UnsupportedProtocol, message: `appProtocol ${app} is not supported` } }
    const key = `${ns}/${name}:${portNum}`
    if (use === 'http') {
      const tls = this.tlsFor(ns, name, str(port.name))
      // The policy reports its own problem; the route only loses the traffic (answers 500)
      // rather than falling back to plaintext.
      if (tls && 'invalid' in tls) return { problem: { reason: '', message: `BackendTLSPolicy for Service ${ns}/${name}: ${tls.invalid}`, silent: true } }
    }
    if (register) this.#emit({ pool: key, service, port, use })
    if (use === 'tcp') {
      const tls = this.tlsFor(ns, name, str(port.name))
      if (tls) return { pool: key, tls }
    }
    return { pool: key }
  }

  tlsFor(ns: string, service: string, portName: string | undefined): BackendTls | { invalid: string } | undefined {
    return (portName ? this.tlsBySection.get(`${ns}/${service}#${portName}`) : undefined) ?? this.tlsBySection.get(`${ns}/${service}`)
  }

  /** Gateways routing to a Service ("<ns>/<svc>" → gateway keys). */
  gatewaysUsing(service: string): Iterable<string> {
    return this.#usage.gatewaysUsing(service)
  }

  pools(): Record<string, BackendPool> {
    const out: Record<string, BackendPool> = {}
    for (const key of this.#usage.poolKeys()) {
      const e = this.#usage.pool(key)!
      const uses = new Set((['http', 'tcp', 'udp'] as const).filter((u) => e.counts[u] > 0))
      if (!this.#memo) {
        out[key] = this.#pool(key, e.service, e.port, uses)
        continue
      }
      const usesKey = [...uses].join()
      const slices = this.#ctx.slices(nsOf(e.service), e.service.metadata.name)
      const hit = this.#memo.get(key)
      // the key names the port, so the same Service means the same port
      const reuse = hit && sameObject(hit.service, e.service) && hit.uses === usesKey && sameObjects(hit.slices, slices)
      const pool = reuse ? hit.pool : this.#pool(key, e.service, e.port, uses)
      this.#memo.set(key, { service: e.service, uses: usesKey, slices, pool })
      out[key] = pool
    }
    return out
  }

  #pool(key: string, service: K8sObject, port: Record<string, unknown>, uses: ReadonlySet<PoolUse>): BackendPool {
    const ns = nsOf(service)
    const app = str(port.appProtocol)
    const tls = uses.has('http') ? this.tlsFor(ns, service.metadata.name, str(port.name)) : undefined
    let protocol: BackendPool['protocol']
    if (uses.has('udp')) protocol = 'udp'
    else if (!uses.has('http')) protocol = 'tcp'
    else if (tls && !('invalid' in tls)) protocol = 'https'
    // gRPC backends: h2c with prior knowledge (appProtocol grpc is what many charts write).
    else if (app === 'kubernetes.io/h2c' || app === 'grpc') protocol = 'h2c'
    else if (app === 'kubernetes.io/ws') protocol = 'ws'
    else protocol = 'http'
    const pool: { -readonly [K in keyof BackendPool]: BackendPool[K] } = {
      key,
      endpoints: this.#endpoints(service, port),
      protocol,
      policy: { type: 'RoundRobin' },
    }
    if (protocol === 'https' && tls && !('invalid' in tls)) pool.tls = tls
    return pool
  }

  /** Ready endpoints of the Service port, with the EndpointSlice port matched by port name. */
  #endpoints(svc: K8sObject, servicePort: Record<string, unknown>): Endpoint[] {
    const portName = str(servicePort.name) ?? ''
    const proto = str(servicePort.protocol) ?? 'TCP'
    const out = new Map<string, Endpoint>()
    if (str(svc.spec?.type) === 'ExternalName' && str(svc.spec?.externalName)) {
      const port = int(servicePort.port)!
      const address = str(svc.spec.externalName)!
      return [{ address, port }]
    }
    for (const slice of this.#ctx.slices(nsOf(svc), svc.metadata.name)) {
      if (slice.addressType === 'FQDN') continue
      const sp = objs(slice.ports).find((p) => (str(p.name) ?? '') === portName && (str(p.protocol) ?? 'TCP') === proto)
      const port = int(sp?.port)
      if (port === undefined) continue
      for (const ep of objs(slice.endpoints)) {
        if (obj(ep.conditions)?.ready === false) continue
        const zone = str(ep.zone)
        for (const address of list(ep.addresses)) {
          if (typeof address !== 'string' || address === '') continue
          const endpoint: Endpoint = zone ? { address, port, zone } : { address, port }
          // the same endpoint in several slices: the first (slices are sorted by name) wins
          if (!out.has(`${address}|${port}`)) out.set(`${address}|${port}`, endpoint)
        }
      }
    }
    return [...out.values()].sort((a, b) => cmp(a.address, b.address) || a.port - b.port)
  }
}
