/** Hand-built IR snapshots for the L4 tests. */
import type { BackendPool, L4Port, L4Route, ListenerTls, Snapshot, WeightedBackend } from '../../../src/ir/types.ts'
import type { Logger } from '../../../src/dataplane/log.ts'

let revision = 0

export function snapshot(l4: L4Port[], pools: BackendPool[]): Snapshot {
  return { revision: ++revision, http: [], l4, pools: Object.fromEntries(pools.map((pool) => [pool.key, pool])) }
}

export function pool(key: string, ports: number[], protocol: BackendPool['protocol'] = 'tcp'): BackendPool {
  return {
    key,
    endpoints: ports.map((port) => ({ address: '127.0.0.1', port })),
    protocol,
    policy: { type: 'RoundRobin' },
  }
}

export function backend(poolKey: string, weight = 1): WeightedBackend {
  return { weight, target: { pool: poolKey }, filters: [] }
}

export function invalidBackend(reason: string, weight = 1): WeightedBackend {
  return { weight, invalid: reason, filters: [] }
}

export function route(
  name: string,
  backends: WeightedBackend[],
  extra: { hostnames?: string[]; terminate?: ListenerTls } = {},
): L4Route {
  return {
    id: `l4route/test/${name}/rule/0`,
    owner: { kind: 'TCPRoute', namespace: 'test', name },
    hostnames: extra.hostnames ?? [],
    terminate: extra.terminate,
    backends,
  }
}

export function tcpPort(port: number, routes: L4Route[]): L4Port {
  return { port, protocol: 'TCP', routes }
}

export function tlsPort(port: number, routes: L4Route[]): L4Port {
  return { port, protocol: 'TLS', routes }
}

export function udpPort(port: number, routes: L4Route[]): L4Port {
  return { port, protocol: 'UDP', routes }
}

/** A logger that keeps what it was told, for asserting on warnings. */
export function recordingLogger(): Logger & { lines: { level: string; msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = []
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push({ level, msg, fields })
    if (process.env.L4_TEST_LOG) console.log(level, msg, fields ?? '')
  }
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
}
