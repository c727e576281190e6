/**
 * Backend health as the operator sees it: `/endpoints` (admin socket, behind the token like the
 * other views) and the `portico_endpoint_*`, `portico_circuit_*` and `portico_retry_budget_*`
 * series in /metrics. Active health comes from the main thread's prober (one per endpoint and
 * check); passive ejections, in-flight counts and circuit counters from the data planes (summed
 * over workers: `ejectedWorkers` says in how many workers an endpoint is ejected right now).
 */
import type { Snapshot } from '../ir/types.ts'
import type { ProbeTarget } from '../dataplane/upstream/health-prober.ts'
import { activeCheckId } from '../dataplane/upstream/pool.ts'
import { endpointKey } from '../dataplane/upstream/registry.ts'
import { poolsInUse } from '../dataplane/upstream/variants.ts'
import type { DataplaneStats } from '../dataplane/upstream/stats.ts'
import type { MetricsRegistry } from '../telemetry/metrics.ts'

export interface EndpointView {
  readonly endpoint: string
  /** Active check passes (or none configured) and no worker has it ejected. */
  readonly healthy: boolean
  readonly active?: { readonly healthy: boolean; readonly lastResult: string; readonly lastProbeAt: string | null }
  readonly ejectedWorkers: number
  readonly inFlight: number
}

export interface PoolView {
  readonly pool: string
  readonly loadBalancer: string
  readonly endpoints: readonly EndpointView[]
  readonly circuit?: { readonly active: number; readonly pending: number; readonly retries: number; readonly overflows: Readonly<Record<string, number>> }
  readonly retryBudgetExhausted?: number
}

export function endpointsView(snapshot: Snapshot | undefined, probers: readonly ProbeTarget[], stats: DataplaneStats): PoolView[] {
  if (!snapshot) return []
  const probes = new Map(probers.map((t) => [`${t.checkId}|${t.endpoint}`, t]))
  const passive = new Map(stats.endpoints.map(([key, ejected, inFlight]) => [key, { ejected, inFlight }]))
  const circuits = new Map(stats.circuits.map(([pool, active, pending, retries, overflows]) => [pool, { active, pending, retries, overflows }]))
  const budgets = new Map(stats.budgets)
  return poolsInUse(snapshot)
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((pool) => {
      const check = pool.healthCheck?.active
      const checkId = check ? activeCheckId(check) : undefined
      const endpoints = pool.endpoints.map((ep): EndpointView => {
        const endpoint = endpointKey(ep.address, ep.port)
        const probe = checkId ? probes.get(`${checkId}|${endpoint}`) : undefined
        const p = passive.get(endpoint)
        const ejectedWorkers = p?.ejected ?? 0
        return {
          endpoint,
          healthy: (probe?.healthy ?? true) && ejectedWorkers === 0,
          ...(probe ? { active: { healthy: probe.healthy, lastResult: probe.lastResult, lastProbeAt: probe.lastProbeAt ? new Date(probe.lastProbeAt).toISOString() : null } } : {}),
          ejectedWorkers,
          inFlight: p?.inFlight ?? 0,
        }
      })
      const circuit = circuits.get(pool.key)
      const exhausted = budgets.get(pool.key)
      return {
        pool: pool.key,
        loadBalancer: pool.policy.type === 'ConsistentHash' ? `ConsistentHash/${pool.policy.source}` : pool.policy.type,
        endpoints,
        ...(circuit ? { circuit } : {}),
        ...(exhausted !== undefined ? { retryBudgetExhausted: exhausted } : {}),
      }
    })
}

/** Scrape-time series; circuit and budget counters are per worker, summed. */
export function backendMetrics(metrics: MetricsRegistry, stats: () => DataplaneStats, probers: () => readonly ProbeTarget[], live: () => Snapshot | undefined): void {
  metrics.collect('portico_endpoint_healthy', 'Endpoint usable by its pool: active check passing (or none) and not passively ejected in any worker (1/0)', () =>
    endpointsView(live(), probers(), stats()).flatMap((p) => p.endpoints.map((e) => [{ pool: p.pool, endpoint: e.endpoint }, e.healthy ? 1 : 0] as [Record<string, string>, number])),
  )
  // The name the observability docs use, with active and passive health apart (1 = healthy; active 1 when no check is configured).
  metrics.collect('portico_backend_endpoint_healthy', 'Endpoint health per pool: check="all" (usable), "active" (health check passing or none), "passive" (ejected by no worker) (1/0)', () =>
    endpointsView(live(), probers(), stats()).flatMap((p) =>
      p.endpoints.flatMap((e) => [
        [{ pool: p.pool, endpoint: e.endpoint, check: 'all' }, e.healthy ? 1 : 0],
        [{ pool: p.pool, endpoint: e.endpoint, check: 'active' }, e.active ? (e.active.healthy ? 1 : 0) : 1],
        [{ pool: p.pool, endpoint: e.endpoint, check: 'passive' }, e.ejectedWorkers === 0 ? 1 : 0],
      ] as [Record<string, string>, number][]),
    ),
  )
  metrics.collect('portico_endpoint_ejected', 'Workers in which passive health has the endpoint ejected right now', () => stats().endpoints.map(([endpoint, ejected]) => [{ endpoint }, ejected]))
  metrics.collect('portico_endpoint_in_flight', 'Requests (HTTP) or connections (L4) in flight to the endpoint', () => stats().endpoints.map(([endpoint, , inFlight]) => [{ endpoint }, inFlight]))
  metrics.collect(
    'portico_circuit_overflow_total',
    'Requests (or L4 connections) refused by a circuit limit (503 x-portico-overload), per pool and limit',
    () => stats().circuits.flatMap(([pool, , , , overflows]) => Object.entries(overflows).map(([limit, n]) => [{ pool, limit }, n] as [Record<string, string>, number])),
    'counter',
  )
  metrics.collect('portico_circuit_active', 'Requests in flight (L4: connections) counted by a pool circuit', () => stats().circuits.map(([pool, active]) => [{ pool }, active]))
  metrics.collect('portico_circuit_pending', 'Requests queued for a connection slot by a pool circuit', () => stats().circuits.map(([pool, , pending]) => [{ pool }, pending]))
  metrics.collect('portico_retry_budget_exhausted_total', 'Retries not made because the pool retry budget was spent', () => stats().budgets.map(([pool, n]) => [{ pool }, n]), 'counter')
}
