/**
 * Assembles the Snapshot from programmed listeners and the routes attached to them: one
 * HttpPort per HTTP(S) port with its listeners most-specific first, one L4Port per TCP/UDP/TLS
 * port. Every list is sorted so equal input gives byte-identical output.
 */
import type { HttpListener, HttpPort, L4Port, L4Route, VirtualHost } from '../ir/types.ts'
import type { ConnectionSettings, PolicyIr } from '../policy/kind.ts'
import type { L4Rule } from './l4-route.ts'
import type { Attachment } from './attach.ts'
import { allListeners, gatewayOrder, listenerProgrammed, type GatewayState, type ListenerState } from './gateway.ts'
import { compareHostSpecificity } from './hostnames.ts'
import { sortRules, type RankedRule } from './precedence.ts'
import { cmp } from './util.ts'
import { l4BackendPolicies } from '../policy/attach.ts'

/** Policy features of two levels: the specific one's replace the general one's of the same name. */
function mergeByName(general: readonly PolicyIr[] | undefined, specific: readonly PolicyIr[] | undefined): readonly PolicyIr[] | undefined {
  if (!general?.length) return specific?.length ? specific : undefined
  if (!specific?.length) return general
  const names = new Set(specific.map((p) => p.name))
  return [...general.filter((p) => !names.has(p.name)), ...specific].sort((a, b) => cmp(a.name, b.name))
}

export interface HttpContribution {
  readonly attachment: Attachment
  readonly rules: readonly RankedRule[]
}

export interface L4Contribution {
  readonly attachment: Attachment
  readonly kind: string
  readonly namespace: string
  readonly name: string
  readonly created: number
  readonly rules: readonly L4Rule[]
}

function listenerOrder(a: ListenerState, b: ListenerState): number {
  // a Gateway's own listeners before its ListenerSets' (then by set, then by position)
  return (
    compareHostSpecificity(a.hostname, b.hostname) ||
    gatewayOrder(a.gateway, b.gateway) ||
    Number(!!a.listenerSet) - Number(!!b.listenerSet) ||
    (a.listenerSet && b.listenerSet ? gatewayOrder(a.listenerSet, b.listenerSet) : 0) ||
    a.index - b.index
  )
}

export function programmedListeners(gateways: readonly GatewayState[]): ListenerState[] {
  const out: ListenerState[] = []
  for (const g of gateways) for (const l of allListeners(g)) if (listenerProgrammed(g, l)) out.push(l)
  return out
}

/** A listener's virtual hosts, most specific hostname first, each with its rules in precedence order. */
export type VirtualHostsOf = (listener: ListenerState) => readonly VirtualHost[]

/** What the ports read from policy attachment (src/policy/attach.ts PolicyIndex). */
export interface PortPolicies {
  listenerPolicies(l: ListenerState): readonly PolicyIr[] | undefined
  httpPortConnection(port: number): ConnectionSettings | undefined
  l4PortConnection(protocol: string, port: number): ConnectionSettings | undefined
}

export function buildHttpPorts(listeners: readonly ListenerState[], virtualHostsOf: VirtualHostsOf, policies?: PortPolicies): HttpPort[] {
  const ports = new Map<number, { protocol: 'HTTP' | 'HTTPS'; listeners: ListenerState[] }>()
  for (const l of listeners) {
    if (l.protocol !== 'HTTP' && l.protocol !== 'HTTPS') continue
    const p = ports.get(l.port) ?? { protocol: l.protocol, listeners: [] }
    p.listeners.push(l)
    ports.set(l.port, p)
  }
  return [...ports.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, p]): HttpPort => {
      const connection = policies?.httpPortConnection(port)
      return {
        port,
        protocol: p.protocol,
        listeners: p.listeners.sort(listenerOrder).map((l): HttpListener => {
          const attached = policies?.listenerPolicies(l)
          return { id: l.id, ...(l.hostname !== undefined ? { hostname: l.hostname } : {}), ...(l.tls ? { tls: l.tls } : {}), virtualHosts: virtualHostsOf(l), ...(attached ? { policies: attached } : {}) }
        }),
        ...(connection ? { connection } : {}),
      }
    })
}

/** Virtual hosts from the contributions of one translation: a full sort per hostname. */
export function virtualHostsFrom(contributions: readonly HttpContribution[]): VirtualHostsOf {
  const byListener = new Map<ListenerState, Map<string, RankedRule[]>>()
  for (const c of contributions) {
    const hosts = byListener.get(c.attachment.listener) ?? new Map<string, RankedRule[]>()
    for (const h of c.attachment.hostnames) {
      // append in place: copying the list per contribution made this quadratic in routes
      const rules = hosts.get(h)
      if (rules) rules.push(...c.rules)
      else hosts.set(h, [...c.rules])
    }
    byListener.set(c.attachment.listener, hosts)
  }
  return (l) => {
    const hosts = byListener.get(l) ?? new Map<string, RankedRule[]>()
    return [...hosts.keys()].sort(compareHostSpecificity).map((hostname) => ({ hostname, rules: dedupe(sortRules(hosts.get(hostname)!)).map((r) => r.rule) }))
  }
}

/** A route attached twice to one listener (two parentRefs) contributes its rules once. */
function dedupe(rules: readonly RankedRule[]): RankedRule[] {
  const seen = new Set<string>()
  return rules.filter((r) => !seen.has(r.rule.id) && seen.add(r.rule.id))
}

export function buildL4Ports(listeners: readonly ListenerState[], contributions: readonly L4Contribution[], policies?: PortPolicies): L4Port[] {
  const ports = new Map<string, { port: number; protocol: L4Port['protocol']; routes: { route: L4Route; created: number; key: string; rule: number }[] }>()
  const portOf = (l: ListenerState) => {
    const protocol: L4Port['protocol'] = l.protocol === 'UDP' ? 'UDP' : l.protocol === 'TLS' ? 'TLS' : 'TCP'
    const k = `${protocol}/${l.port}`
    const p = ports.get(k) ?? { port: l.port, protocol, routes: [] }
    ports.set(k, p)
    return p
  }
  const programmed = new Set<ListenerState>()
  for (const l of listeners) {
    if (l.protocol !== 'TCP' && l.protocol !== 'UDP' && l.protocol !== 'TLS') continue
    programmed.add(l)
    portOf(l)
  }
  const seen = new Set<string>()
  for (const c of contributions) {
    const l = c.attachment.listener
    if (!programmed.has(l)) continue
    const p = portOf(l)
    const hostnames = l.protocol === 'TLS' ? c.attachment.hostnames.filter((h) => h !== '*').sort(compareHostSpecificity) : []
    for (const r of c.rules) {
      const id = `${c.kind.toLowerCase()}/${c.namespace}/${c.name}/rule/${r.ruleIndex}`
      const dup = `${p.protocol}/${p.port}/${l.id}/${id}`
      if (seen.has(dup)) continue
      seen.add(dup)
      const route: { -readonly [K in keyof L4Route]: L4Route[K] } = {
        id,
        owner: { kind: c.kind, namespace: c.namespace, name: c.name },
        hostnames,
        backends: r.backends,
      }
      if (l.protocol === 'TLS' && l.tlsMode === 'Terminate' && l.tls) route.terminate = l.tls
      // a BackendTLSPolicy only matters where the gateway terminates (and so re-encrypts)
      else if (r.backends.some((b) => b.backendTls)) route.backends = r.backends.map(({ backendTls: _, ...b }) => b)
      if (r.proxyProtocol) route.proxyProtocol = r.proxyProtocol
      // Gateway-wide and listener backend features, replaced by name by the route's and rule's
      const backendPolicies = mergeByName(l4BackendPolicies(policies?.listenerPolicies(l), p.protocol === 'UDP'), r.policies)
      if (backendPolicies) route.policies = backendPolicies
      p.routes.push({ route, created: c.created, key: `${c.namespace}/${c.name}`, rule: r.ruleIndex })
    }
  }
  // TCP/UDP: the oldest route serves the port (the spec's tie-break); TLS: most specific SNI first.
  const bestHost = (r: L4Route) => r.hostnames[0] ?? '*'
  return [...ports.values()]
    .sort((a, b) => a.port - b.port || cmp(a.protocol, b.protocol))
    .map((p): L4Port => {
      const connection = p.protocol === 'UDP' ? undefined : policies?.l4PortConnection(p.protocol, p.port)
      return {
        port: p.port,
        protocol: p.protocol,
        routes: p.routes
          .sort((a, b) => compareHostSpecificity(bestHost(a.route), bestHost(b.route)) || a.created - b.created || cmp(a.key, b.key) || a.rule - b.rule || cmp(a.route.id, b.route.id))
          .map((x) => x.route),
        ...(connection ? { connection } : {}),
      }
    })
}
