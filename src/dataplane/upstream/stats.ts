/**
 * What a data plane reports about its backends (per process: a worker sends it to the main
 * thread about once a second when it changed): passive ejections, in-flight counts, circuit
 * counters and retry-budget refusals. The main thread sums workers for /metrics and /endpoints.
 */
import type { EndpointRegistry } from './registry.ts'

export interface DataplaneStats {
  /** [endpoint key, ejected now (0/1), requests in flight]. */
  readonly endpoints: readonly (readonly [string, number, number])[]
  /** [pool key, active, pending, retries, overflows by limit]. */
  readonly circuits: readonly (readonly [string, number, number, number, Readonly<Record<string, number>>])[]
  /** [pool key, retries the budget refused]. */
  readonly budgets: readonly (readonly [string, number])[]
}

export const EMPTY_STATS: DataplaneStats = { endpoints: [], circuits: [], budgets: [] }

export function registryStats(registries: readonly EndpointRegistry[], now = Date.now()): DataplaneStats {
  const endpoints = new Map<string, [string, number, number]>()
  const circuits: [string, number, number, number, Record<string, number>][] = []
  const budgets: [string, number][] = []
  for (const registry of registries) {
    for (const state of registry.list()) {
      const entry = endpoints.get(state.key) ?? [state.key, 0, 0]
      entry[1] = Math.max(entry[1], state.ejectedUntil > now ? 1 : 0)
      entry[2] += state.inFlight
      endpoints.set(state.key, entry)
    }
    for (const c of registry.circuits()) circuits.push([c.poolKey, c.active, c.pending, c.retries, { ...c.overflows }])
    for (const [pool, b] of registry.budgets()) budgets.push([pool, b.exhausted])
  }
  return { endpoints: [...endpoints.values()], circuits, budgets }
}

/** Several processes' stats as one: ejections counted per process, the rest summed. */
export function mergeStats(all: readonly DataplaneStats[]): DataplaneStats {
  if (all.length === 1) return all[0]!
  const endpoints = new Map<string, [string, number, number]>()
  const circuits = new Map<string, [string, number, number, number, Record<string, number>]>()
  const budgets = new Map<string, [string, number]>()
  for (const stats of all) {
    for (const [key, ejected, inFlight] of stats.endpoints) {
      const e = endpoints.get(key) ?? [key, 0, 0]
      e[1] += ejected
      e[2] += inFlight
      endpoints.set(key, e)
    }
    for (const [pool, active, pending, retries, overflows] of stats.circuits) {
      const c = circuits.get(pool) ?? [pool, 0, 0, 0, {}]
      c[1] += active
      c[2] += pending
      c[3] += retries
      for (const [limit, n] of Object.entries(overflows)) c[4][limit] = (c[4][limit] ?? 0) + n
      circuits.set(pool, c)
    }
    for (const [pool, n] of stats.budgets) {
      const b = budgets.get(pool) ?? [pool, 0]
      b[1] += n
      budgets.set(pool, b)
    }
  }
  return { endpoints: [...endpoints.values()], circuits: [...circuits.values()], budgets: [...budgets.values()] }
}
