/**
 * Compiles Snapshot.l4 into the runtime plan the accept handlers read: one PortPlan per listener
 * socket, with SNI tables, backend choosers and TLS contexts built once per snapshot.
 *
 * A plan is immutable once built. The data plane swaps the whole plan in one assignment and each
 * connection reads it once, at accept, so a connection never sees half of two snapshots.
 */
import type { L4Port, L4Route, OwnerRef, Snapshot } from '../../ir/types.ts'
import type { ConnectionSettings } from '../../policy/kind.ts'
import type { EndpointRegistry } from '../upstream/registry.ts'
import { BackendChooser, PoolCache } from './backends.ts'
import { backendSettings } from '../upstream/variants.ts'
import { SniTable } from './sni-table.ts'
import { TerminateContexts, type CertificateCache } from './tls-contexts.ts'

/** How a port's connections are handled; decides which kind of socket listens on it. */
export type PortMode = 'tcp' | 'tls-passthrough' | 'tls-terminate' | 'udp'

/** What a listener socket is: Bun.listen (tcp, passthrough), node:tls (terminate), Bun.udpSocket. */
export type ListenerKind = 'stream' | 'terminate' | 'udp'

export interface CompiledRoute {
  readonly id: string
  readonly owner: OwnerRef
  readonly hostnames: readonly string[]
  readonly backends: BackendChooser
  /** Certificates for TLS termination, ready to hand to node:tls (terminate mode only). */
  readonly tls?: TerminateContexts
  /** Write a PROXY protocol header of this version to the backend before any client byte. */
  readonly proxyProtocol?: 'V1' | 'V2'
}

export interface PortPlan {
  readonly port: number
  readonly mode: PortMode
  readonly routes: readonly CompiledRoute[]
  /** Route by server name; for TCP and UDP only the fallback (first route) is ever used. */
  readonly sni: SniTable<CompiledRoute>
  /** ClientTrafficPolicy settings (PROXY protocol, connection limit, idle timeout); UDP ignores them. */
  readonly connection?: ConnectionSettings
  /** tls-terminate only: some routes are Passthrough (no `tls`), chosen by SNI like the others. */
  readonly mixed?: boolean
}

export interface L4Plan {
  readonly revision: number
  /** Keyed by listenerKey(): "tcp:<port>" or "udp:<port>". */
  readonly ports: ReadonlyMap<string, PortPlan>
}

export const EMPTY_PLAN: L4Plan = { revision: -1, ports: new Map() }

/** A route of a port as open connections see it after a swap: the route and the endpoints it may send to. */
export interface LiveRoute {
  readonly route: CompiledRoute
  /** "address:port" of every endpoint of every backendRef of the route, zero weights included. */
  readonly endpoints: ReadonlySet<string>
}

const liveRoutesCache = new WeakMap<PortPlan, ReadonlyMap<string, LiveRoute>>()

/**
 * Route id → LiveRoute for a port, built once per plan and only when a swap has connections to
 * check. A connection or UDP session survives a swap iff its route id is here and its endpoint is
 * among that route's endpoints (a weight set to 0 drains: new connections go elsewhere, open ones stay).
 */
export function liveRoutes(port: PortPlan): ReadonlyMap<string, LiveRoute> {
  let routes = liveRoutesCache.get(port)
  if (!routes) {
    const built = new Map<string, LiveRoute>()
    for (const route of port.routes) if (!built.has(route.id)) built.set(route.id, { route, endpoints: route.backends.endpointKeys() })
    routes = built
    liveRoutesCache.set(port, routes)
  }
  return routes
}

/** Whether a connection on `route` to `endpoint` may keep running under `port` (undefined: the port left the plan). */
export function survives(port: PortPlan | undefined, routeId: string, endpoint: string): boolean {
  return port !== undefined && liveRoutes(port).get(routeId)?.endpoints.has(endpoint) === true
}

export function listenerKey(mode: PortMode, port: number): string {
  return `${mode === 'udp' ? 'udp' : 'tcp'}:${port}`
}

export function listenerKind(mode: PortMode): ListenerKind {
  if (mode === 'udp') return 'udp'
  return mode === 'tls-terminate' ? 'terminate' : 'stream'
}

export interface CompileResult {
  readonly plan: L4Plan
  readonly problems: string[]
}

export function compileL4(snapshot: Snapshot, registry: EndpointRegistry, certificates: CertificateCache): CompileResult {
  const problems: string[] = []
  const pools = new PoolCache(snapshot.pools, registry)
  const ports = new Map<string, PortPlan>()
  for (const l4 of snapshot.l4) {
    const mode = portMode(l4)
    const key = listenerKey(mode, l4.port)
    if (ports.has(key)) {
      problems.push(`l4: port ${l4.port} appears twice in the snapshot (${l4.protocol}); keeping the first`)
      continue
    }
    const routes = l4.routes.map((route) => compileRoute(route, pools, certificates, problems))
    const sni = new SniTable(
      routes.map((route) => ({ hostnames: mode === 'tcp' || mode === 'udp' ? [] : route.hostnames, route })),
    )
    // Terminate and Passthrough routes on one port: the terminate listener reads each ClientHello
    // itself and splices the Passthrough names (routes without `tls`) to their backends untouched.
    const mixed = mode === 'tls-terminate' && routes.some((route) => !route.tls)
    ports.set(key, { port: l4.port, mode, routes, sni, connection: l4.connection, ...(mixed ? { mixed } : {}) })
  }
  return { plan: { revision: snapshot.revision, ports }, problems }
}

function portMode(l4: L4Port): PortMode {
  if (l4.protocol === 'UDP') return 'udp'
  if (l4.protocol === 'TCP') return 'tcp'
  return l4.routes.some((route) => route.terminate) ? 'tls-terminate' : 'tls-passthrough'
}

function compileRoute(
  route: L4Route,
  pools: PoolCache,
  certificates: CertificateCache,
  problems: string[],
): CompiledRoute {
  let tls: TerminateContexts | undefined
  if (route.terminate) {
    tls = certificates.contextsFor(route.terminate.certificates, (problem) => problems.push(`l4: ${route.id}: ${problem}`))
  }
  return { id: route.id, owner: route.owner, hostnames: route.hostnames, backends: pools.chooser(route.backends, route.policies?.length ? backendSettings(route.policies) : undefined, route.terminate !== undefined), tls, proxyProtocol: route.proxyProtocol }
}
