/**
 * backendRefs → pools. A reference resolves to a Service port (kind, ReferenceGrant, existence
 * and port checked, in the order the spec gives reasons for); resolved ports become pools of
 * ready EndpointSlice endpoints. Only referenced pools reach the snapshot.
 */
import type { BackendPool, BackendTls, Endpoint } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'
import { Context, nsOf } from './context.ts'
import { GATEWAY_GROUP, REASON } from './reasons.ts'
import { isReferenceAllowed } from './reference-grant.ts'
import { cmp, int, list, obj, objs, str } from './util.ts'

/** How a pool is used: decides its protocol when the Service port does not. */
export type PoolUse = 'http' | 'tcp' | 'udp'

export interface RefProblem {
  readonly reason: string
  readonly message: string
  /** Not reported in the route's ResolvedRefs (another object's status carries it). */
  readonly silent?: boolean
}

export type BackendResolution = { readonly pool: string } | { readonly problem: RefProblem }

interface PoolEntry {
  readonly service: K8sObject
  readonly port: Record<string, unknown>
  readonly uses: Set<PoolUse>
}

const KNOWN_APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'kubernetes.io/ws'])

export class Backends {
  readonly #ctx: Context
  readonly #pools = new Map<string, PoolEntry>()
  readonly #serviceUsers = new Map<string, Set<string>>()
  /** BackendTLSPolicy per "<ns>/<service>" (and "<ns>/<service>#<portName>"), filled by backend-tls.ts. */
  readonly tlsBySection = new Map<string, BackendTls | { invalid: string }>()

  constructor(ctx: Context) {
    this.#ctx = ctx
  }

  /**
   * Resolves one backendRef of a route (or a mirror filter). `register` records the pool as
   * used; pass false to validate only (e.g. weight-0 refs still get status).
   */
  resolve(route: K8sObject, ref: Record<string, unknown>, use: PoolUse, gateways: readonly string[], register = true): BackendResolution {
    const routeNs = nsOf(route)
    const group = str(ref.group) ?? ''
    const kind = str(ref.kind) ?? 'Service'
    const name = str(ref.name) ?? ''
    const ns = str(ref.namespace) ?? routeNs
    if (group !== '' || kind !== 'Service') return { problem: { reason: REASON.InvalidKind, message: `backendRef kind ${group ? `${group}/` : ''}${kind} is not supported` } }
    if (!isReferenceAllowed({ group: GATEWAY_GROUP, kind: route.kind, namespace: routeNs }, { group: '', kind: 'Service', namespace: ns, name }, this.#ctx.view.referenceGrants))
      return { problem: { reason: REASON.RefNotPermitted, message: `backendRef to Service ${ns}/${name} is not permitted by any ReferenceGrant` } }
    const service = this.#ctx.service(ns, name)
    if (!service) return { problem: { reason: REASON.BackendNotFound, message: `Service ${ns}/${name} not found` } }
    if (register) {
      // recorded before the port checks: a BackendTLSPolicy reports to every Gateway routing here
      const users = this.#serviceUsers.get(`${ns}/${name}`) ?? new Set<string>()
      for (const g of gateways) users.add(g)
      this.#serviceUsers.set(`${ns}/${name}`, users)
    }
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
    if (register) {
      const entry = this.#pools.get(key) ?? { service, port, uses: new Set<PoolUse>() }
      entry.uses.add(use)
      this.#pools.set(key, entry)
    }
    return { pool: key }
  }

  tlsFor(ns: string, service: string, portName: string | undefined): BackendTls | { invalid: string } | undefined {
    return (portName ? this.tlsBySection.get(`${ns}/${service}#${portName}`) : undefined) ?? this.tlsBySection.get(`${ns}/${service}`)
  }

  /** Gateways routing to each Service ("<ns>/<svc>" → gateway keys). */
  gatewaysByService(): ReadonlyMap<string, ReadonlySet<string>> {
    return this.#serviceUsers
  }

  pools(): Record<string, BackendPool> {
    const out: Record<string, BackendPool> = {}
    for (const key of [...this.#pools.keys()].sort(cmp)) {
      const e = this.#pools.get(key)!
      out[key] = this.#pool(key, e)
    }
    return out
  }

  #pool(key: string, e: PoolEntry): BackendPool {
    const ns = nsOf(e.service)
    const app = str(e.port.appProtocol)
    const tls = e.uses.has('http') ? this.tlsFor(ns, e.service.metadata.name, str(e.port.name)) : undefined
    let protocol: BackendPool['protocol']
    if (e.uses.has('udp')) protocol = 'udp'
    else if (!e.uses.has('http')) protocol = 'tcp'
    else if (tls && !('invalid' in tls)) protocol = 'https'
    else if (app === 'kubernetes.io/h2c') protocol = 'h2c'
    else if (app === 'kubernetes.io/ws') protocol = 'ws'
    else protocol = 'http'
    const pool: { -readonly [K in keyof BackendPool]: BackendPool[K] } = {
      key,
      endpoints: this.#endpoints(e),
      protocol,
      policy: { type: 'RoundRobin' },
    }
    if (protocol === 'https' && tls && !('invalid' in tls)) pool.tls = tls
    return pool
  }

  /** Ready endpoints of the Service port, with the EndpointSlice port matched by port name. */
  #endpoints(e: PoolEntry): Endpoint[] {
    const svc = e.service
    const portName = str(e.port.name) ?? ''
    const proto = str(e.port.protocol) ?? 'TCP'
    const out = new Map<string, Endpoint>()
    if (str(svc.spec?.type) === 'ExternalName' && str(svc.spec?.externalName)) {
      const port = int(e.port.port)!
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
