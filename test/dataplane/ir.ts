/** Hand-built IR for data plane tests: small builders with test-friendly defaults. */
import type {
  BackendPool,
  HttpAction,
  HttpFilter,
  HttpListener,
  HttpMatch,
  HttpPort,
  HttpRule,
  LoadBalancerPolicy,
  Snapshot,
  VirtualHost,
  WeightedBackend,
} from '../../src/ir/types.ts'

let ruleCounter = 0

export function rule(partial: Partial<Omit<HttpRule, 'match'>> & { match?: Partial<HttpMatch> } = {}): HttpRule {
  const { match, ...rest } = partial
  return {
    id: `httproute/test/r/rule/${ruleCounter++}/match/0`,
    owner: { kind: 'HTTPRoute', namespace: 'test', name: 'r' },
    filters: [],
    action: forwardTo('p1'),
    ...rest,
    match: { path: { type: 'PathPrefix', value: '/' }, headers: [], query: [], ...match },
  }
}

export function forwardTo(...pools: (string | [string, number])[]): HttpAction {
  return { kind: 'forward', backends: pools.map((p) => (typeof p === 'string' ? backend(p) : backend(p[0], p[1]))) }
}

export function backend(pool: string, weight = 1, filters: HttpFilter[] = []): WeightedBackend {
  return { weight, target: { pool }, filters }
}

export function vhost(hostname: string, rules: HttpRule[]): VirtualHost {
  return { hostname, rules }
}

export function listener(virtualHosts: VirtualHost[], hostname?: string): HttpListener {
  return { id: `gateway/test/gw/${hostname ?? 'any'}`, hostname, virtualHosts }
}

export function port(portNumber: number, listeners: HttpListener[], protocol: 'HTTP' | 'HTTPS' = 'HTTP'): HttpPort {
  return { port: portNumber, protocol, listeners }
}

export function pool(key: string, ports: number[], policy: LoadBalancerPolicy = { type: 'RoundRobin' }): BackendPool {
  return { key, endpoints: ports.map((p) => ({ address: '127.0.0.1', port: p })), protocol: 'http', policy }
}

export function snapshot(http: HttpPort[], pools: BackendPool[], revision = 1): Snapshot {
  return { revision, http, l4: [], pools: Object.fromEntries(pools.map((p) => [p.key, p])) }
}

/** One port, one catch-all listener and vhost: the common case. */
export function simple(portNumber: number, rules: HttpRule[], pools: BackendPool[], revision = 1): Snapshot {
  return snapshot([port(portNumber, [listener([vhost('*', rules)])])], pools, revision)
}
