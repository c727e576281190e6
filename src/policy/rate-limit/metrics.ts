/**
 * Rate-limit metrics for /metrics, read in the main thread from the process-wide shared table
 * that every worker counts into (local-store.ts), labelled from the live snapshot's policies:
 *   portico_ratelimit_requests_total{policy, scope, rule, result="allowed"|"limited"}
 *   portico_ratelimit_redis_errors_total{policy, rule}      global rules Redis did not answer in time
 *   portico_ratelimit_failed_open_total{policy, rule}       ... of which let through (not failClosed)
 *   portico_ratelimit_evictions_total                       local buckets taken over (table full)
 * A rule is labelled by its index in `local.rules` / `global.rules`; counts are per process.
 */
import type { Snapshot } from '../../ir/types.ts'
import type { PolicyIr } from '../kind.ts'
import type { MetricsRegistry } from '../../telemetry/metrics.ts'
import { sharedCounters } from './local-store.ts'
import { metricKey } from './runtime.ts'
import type { RateLimitSpec } from './spec.ts'

type Row = [Record<string, string>, number]

function rateLimitPolicies(snapshot: Snapshot | undefined): Map<string, RateLimitSpec> {
  const out = new Map<string, RateLimitSpec>()
  const add = (list: readonly PolicyIr[] | undefined) => {
    for (const p of list ?? []) if (p.name === 'rateLimit') out.set(p.id, p.spec as RateLimitSpec)
  }
  for (const port of snapshot?.http ?? [])
    for (const listener of port.listeners) {
      add(listener.policies)
      for (const vh of listener.virtualHosts) for (const rule of vh.rules) add(rule.policies)
    }
  return out
}

export function registerRateLimitMetrics(metrics: MetricsRegistry, live: () => Snapshot | undefined): void {
  const read = () => {
    const counters = sharedCounters()
    const requests: Row[] = []
    const errors: Row[] = []
    const failedOpen: Row[] = []
    for (const [id, spec] of rateLimitPolicies(live())) {
      for (const scope of ['local', 'global'] as const) {
        const rules = spec[scope]?.rules ?? []
        for (let i = 0; i < rules.length; i++) {
          const [a, b] = metricKey(id, scope, i)
          const m = counters.readMetrics(a, b) ?? { allowed: 0, limited: 0, errors: 0, failedOpen: 0 }
          const labels = { policy: id, scope, rule: String(i) }
          requests.push([{ ...labels, result: 'allowed' }, m.allowed], [{ ...labels, result: 'limited' }, m.limited])
          if (scope === 'global') {
            errors.push([{ policy: id, rule: String(i) }, m.errors])
            failedOpen.push([{ policy: id, rule: String(i) }, m.failedOpen])
          }
        }
      }
    }
    return { requests, errors, failedOpen }
  }
  metrics.collect('portico_ratelimit_requests_total', 'Requests counted by a rate-limit rule, by result', () => read().requests, 'counter')
  metrics.collect('portico_ratelimit_redis_errors_total', 'Global rate-limit checks Redis did not answer in time (or was down)', () => read().errors, 'counter')
  metrics.collect('portico_ratelimit_failed_open_total', 'Requests let through because Redis did not answer (global rules without failClosed)', () => read().failedOpen, 'counter')
  metrics.collect('portico_ratelimit_evictions_total', 'Local rate-limit buckets taken over because the shared table was full', () => [[undefined, sharedCounters().evictions]], 'counter')
}
