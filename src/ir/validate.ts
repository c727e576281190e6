/**
 * Invariants a snapshot must satisfy before it may go live. Translation should never produce
 * a snapshot that fails these; if it does (a translator bug, or input we did not foresee), the
 * previous snapshot keeps serving and the problems are reported. Cheap: runs once per rebuild.
 */
import type { HttpFilter, Snapshot, WeightedBackend } from './types.ts'

export function validateSnapshot(ir: Snapshot): string[] {
  const problems: string[] = []
  const streamPorts = new Map<number, string>() // TCP-based ports: HTTP, HTTPS, TCP, TLS
  const udpPorts = new Set<number>()
  const claim = (port: number, what: string) => {
    if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`${what}: port ${port} out of range`)
    const owner = streamPorts.get(port)
    if (owner) problems.push(`${what}: port ${port} already used by ${owner}`)
    else streamPorts.set(port, what)
  }
  const checkTarget = (b: WeightedBackend, where: string) => {
    if (!Number.isInteger(b.weight) || b.weight < 0) problems.push(`${where}: weight ${b.weight} must be a non-negative integer`)
    if (b.target && !ir.pools[b.target.pool]) problems.push(`${where}: pool ${b.target.pool} is not defined`)
    if (!b.target && !b.invalid) problems.push(`${where}: backend has neither a target nor an invalid reason`)
    b.filters.forEach((f) => checkFilter(f, where))
  }
  const checkFilter = (f: HttpFilter, where: string) => {
    if (f.type === 'RequestMirror') {
      if (!ir.pools[f.backend.pool]) problems.push(`${where}: mirror pool ${f.backend.pool} is not defined`)
      if (!(f.percent >= 0 && f.percent <= 100)) problems.push(`${where}: mirror percent ${f.percent} out of range`)
    }
  }
  const checkRegex = (source: string, where: string) => {
    try {
      new RegExp(source)
    } catch (err) {
      problems.push(`${where}: invalid regular expression ${JSON.stringify(source)}: ${(err as Error).message}`)
    }
  }

  for (const port of ir.http) {
    claim(port.port, `${port.protocol} port ${port.port}`)
    for (const listener of port.listeners) {
      if (port.protocol === 'HTTPS' && !listener.tls?.certificates.length) problems.push(`${listener.id}: HTTPS listener without certificates`)
      for (const vh of listener.virtualHosts) {
        for (const rule of vh.rules) {
          if (rule.match.path.type === 'RegularExpression') checkRegex(rule.match.path.value, rule.id)
          for (const m of [...rule.match.headers, ...rule.match.query]) if (m.type === 'RegularExpression') checkRegex(m.value, rule.id)
          rule.filters.forEach((f) => checkFilter(f, rule.id))
          if (rule.action.kind === 'forward') rule.action.backends.forEach((b) => checkTarget(b, rule.id))
          if (rule.action.kind === 'redirect' && ![301, 302, 303, 307, 308].includes(rule.action.statusCode))
            problems.push(`${rule.id}: redirect status ${rule.action.statusCode} is not a redirect`)
          if (rule.retry && (rule.retry.attempts < 0 || rule.retry.backoffMs < 0)) problems.push(`${rule.id}: negative retry settings`)
        }
      }
    }
  }
  for (const port of ir.l4) {
    if (port.protocol === 'UDP') {
      if (udpPorts.has(port.port)) problems.push(`UDP port ${port.port} defined twice`)
      udpPorts.add(port.port)
    } else claim(port.port, `${port.protocol} port ${port.port}`)
    for (const route of port.routes) route.backends.forEach((b) => checkTarget(b, route.id))
  }
  for (const [key, pool] of Object.entries(ir.pools)) {
    if (pool.key !== key) problems.push(`pool ${key}: key mismatch (${pool.key})`)
    for (const ep of pool.endpoints) if (!(ep.port > 0 && ep.port <= 65535)) problems.push(`pool ${key}: endpoint port ${ep.port} out of range`)
  }
  return problems
}
