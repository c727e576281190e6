/**
 * Invariants a snapshot must satisfy before it may go live. Translation should never produce
 * a snapshot that fails these; if it does (a translator bug, or input we did not foresee), the
 * previous snapshot keeps serving and the problems are reported. Cheap: runs once per rebuild.
 */
import type { HttpFilter, HttpRule, Snapshot, WeightedBackend } from './types.ts'

/** One check of a rule: a problem found on the rule alone, or a pool the snapshot must define. */
type RuleCheck = string | { readonly pool: string; readonly problem: string }

/**
 * A rule's checks depend on the rule alone except for "is this pool defined", so they are worked
 * out once per rule object and only the pool lookups are redone per snapshot: the translator
 * hands the same rule objects to every rebuild while their route is unchanged (IR is immutable
 * data). The list keeps the order in which the checks report problems.
 */
const ruleChecks = new WeakMap<HttpRule, readonly RuleCheck[] | PoolOnly>()

/**
 * The checks of the common rule, whose only check is that its one pool is defined: its pool key
 * (the problem text is made only if it is missing). At 10,000 rules a list with one
 * `{ pool, problem }` per rule held ~200 bytes of memory each.
 */
type PoolOnly = string

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
  const report = (checks: readonly RuleCheck[]) => {
    for (const c of checks) {
      if (typeof c === 'string') problems.push(c)
      else if (!ir.pools[c.pool]) problems.push(c.problem)
    }
  }

  for (const port of ir.http) {
    claim(port.port, `${port.protocol} port ${port.port}`)
    for (const listener of port.listeners) {
      if (port.protocol === 'HTTPS' && !listener.tls?.certificates.length) problems.push(`${listener.id}: HTTPS listener without certificates`)
      for (const vh of listener.virtualHosts) {
        for (const rule of vh.rules) {
          let checks = ruleChecks.get(rule)
          if (checks === undefined) ruleChecks.set(rule, (checks = compact(checksOf(rule), rule)))
          if (typeof checks !== 'string') report(checks)
          else if (!ir.pools[checks]) problems.push(poolProblem(rule.id, checks))
        }
      }
    }
  }
  for (const port of ir.l4) {
    if (port.protocol === 'UDP') {
      if (udpPorts.has(port.port)) problems.push(`UDP port ${port.port} defined twice`)
      udpPorts.add(port.port)
    } else claim(port.port, `${port.protocol} port ${port.port}`)
    for (const route of port.routes) {
      const checks: RuleCheck[] = []
      route.backends.forEach((b) => checkTarget(b, route.id, checks))
      report(checks)
    }
  }
  for (const [key, pool] of Object.entries(ir.pools)) {
    if (pool.key !== key) problems.push(`pool ${key}: key mismatch (${pool.key})`)
    for (const ep of pool.endpoints) if (!(ep.port > 0 && ep.port <= 65535)) problems.push(`pool ${key}: endpoint port ${ep.port} out of range`)
  }
  return problems
}

function compact(checks: readonly RuleCheck[], rule: HttpRule): readonly RuleCheck[] | PoolOnly {
  const only = checks.length === 1 ? checks[0]! : undefined
  return only !== undefined && typeof only !== 'string' && only.problem === poolProblem(rule.id, only.pool) ? only.pool : checks
}

function poolProblem(where: string, pool: string): string {
  return `${where}: pool ${pool} is not defined`
}

function checksOf(rule: HttpRule): RuleCheck[] {
  const out: RuleCheck[] = []
  if (rule.match.path.type === 'RegularExpression') checkRegex(rule.match.path.value, rule.id, out)
  for (const m of [...rule.match.headers, ...rule.match.query]) if (m.type === 'RegularExpression') checkRegex(m.value, rule.id, out)
  rule.filters.forEach((f) => checkFilter(f, rule.id, out))
  if (rule.action.kind === 'forward') rule.action.backends.forEach((b) => checkTarget(b, rule.id, out))
  if (rule.action.kind === 'redirect' && ![301, 302, 303, 307, 308].includes(rule.action.statusCode))
    out.push(`${rule.id}: redirect status ${rule.action.statusCode} is not a redirect`)
  if (rule.retry && (rule.retry.attempts < 0 || rule.retry.backoffMs < 0)) out.push(`${rule.id}: negative retry settings`)
  return out
}

function checkTarget(b: WeightedBackend, where: string, out: RuleCheck[]): void {
  if (!Number.isInteger(b.weight) || b.weight < 0) out.push(`${where}: weight ${b.weight} must be a non-negative integer`)
  if (b.target) out.push({ pool: b.target.pool, problem: poolProblem(where, b.target.pool) })
  if (!b.target && !b.invalid && !b.composite) out.push(`${where}: backend has neither a target nor an invalid reason`)
  for (const m of b.composite?.members ?? []) if (m.pool) out.push({ pool: m.pool, problem: `${where}: composite member pool ${m.pool} is not defined` })
  b.filters.forEach((f) => checkFilter(f, where, out))
}

function checkFilter(f: HttpFilter, where: string, out: RuleCheck[]): void {
  if (f.type === 'ExternalAuth') out.push({ pool: f.pool, problem: `${where}: external auth pool ${f.pool} is not defined` })
  if (f.type === 'RequestMirror') {
    out.push({ pool: f.backend.pool, problem: `${where}: mirror pool ${f.backend.pool} is not defined` })
    if (!(f.percent >= 0 && f.percent <= 100)) out.push(`${where}: mirror percent ${f.percent} out of range`)
  }
}

function checkRegex(source: string, where: string, out: RuleCheck[]): void {
  try {
    new RegExp(source)
  } catch (err) {
    out.push(`${where}: invalid regular expression ${JSON.stringify(source)}: ${(err as Error).message}`)
  }
}
