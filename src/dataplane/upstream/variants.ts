/**
 * Pool variants: a rule whose BackendTrafficPolicy sets loadBalancer, healthCheck,
 * circuitBreaker or a retry budget calls its Services through pools of its own, keyed
 * "<ns>/<service>:<port>#<settings hash>", built from the shared pool with those settings.
 * Routes without such a policy keep the shared pool (nothing new per request); rules with the
 * same settings share a variant (and its circuit counters and active probers).
 *
 * The variant IR is derived, never stored in the snapshot: compile() (snapshot.ts), the active
 * prober and the admin view all call the same functions here, so they agree on keys.
 */
import type { BackendPool, CircuitBreakerPolicy, HealthCheckPolicy, HttpRetry, LoadBalancerPolicy, RetryBudget, Snapshot } from '../../ir/types.ts'
import type { PolicyIr } from '../../policy/kind.ts'
import type { RetrySpec } from '../../policy/backend-traffic/spec.ts'
import { mergePolicies } from '../http/chain.ts'

export interface PoolSettings {
  readonly policy?: LoadBalancerPolicy
  readonly healthCheck?: HealthCheckPolicy
  readonly circuitBreaker?: CircuitBreakerPolicy
  readonly retryBudget?: RetryBudget
}

export interface BackendSettings {
  /** undefined: the shared pools. */
  readonly pool: PoolSettings | undefined
  /** Its hash: the variant key suffix. */
  readonly id: string
  /** BackendTrafficPolicy retry (an HTTPRoute rule's own `retry` wins over it). */
  readonly retry: HttpRetry | undefined
}

const NONE: BackendSettings = { pool: undefined, id: '', retry: undefined }

/** The backend settings among a rule's merged policy features. */
export function backendSettings(policies: readonly PolicyIr[]): BackendSettings {
  let pool: { -readonly [K in keyof PoolSettings]: PoolSettings[K] } | undefined
  let retry: HttpRetry | undefined
  for (const p of policies) {
    switch (p.name) {
      case 'loadBalancer':
        ;(pool ??= {}).policy = p.spec as LoadBalancerPolicy
        break
      case 'healthCheck':
        ;(pool ??= {}).healthCheck = p.spec as HealthCheckPolicy
        break
      case 'circuitBreaker':
        ;(pool ??= {}).circuitBreaker = p.spec as CircuitBreakerPolicy
        break
      case 'retry': {
        const spec = p.spec as RetrySpec
        retry = spec.retry
        if (spec.budget) (pool ??= {}).retryBudget = spec.budget
        break
      }
    }
  }
  if (!pool && !retry) return NONE
  return { pool, id: pool ? Bun.hash(JSON.stringify(pool)).toString(36) : '', retry }
}

export function variantKey(base: string, settings: BackendSettings): string {
  return settings.pool ? `${base}#${settings.id}` : base
}

/** The IR of a variant: the shared pool's endpoints and protocol with the settings on top. */
export function variantIr(base: BackendPool, settings: BackendSettings): BackendPool {
  const s = settings.pool!
  return {
    ...base,
    key: `${base.key}#${settings.id}`,
    ...(s.policy ? { policy: s.policy } : {}),
    ...(s.healthCheck ? { healthCheck: s.healthCheck } : {}),
    ...(s.circuitBreaker ? { circuitBreaker: s.circuitBreaker } : {}),
    ...(s.retryBudget ? { retryBudget: s.retryBudget } : {}),
  }
}

/**
 * Every pool a snapshot's data planes use: its own pools plus the variants its HTTP rules'
 * policies make (per rule and listener: a Gateway-wide policy reaches every rule behind it) and
 * those of its L4 routes (their policies are merged already).
 * For the main thread (active prober, /endpoints, /metrics); the data plane builds the same
 * variants while compiling.
 */
export function poolsInUse(snapshot: Snapshot): BackendPool[] {
  const out = new Map<string, BackendPool>(Object.entries(snapshot.pools))
  for (const port of snapshot.http)
    for (const listener of port.listeners)
      for (const host of listener.virtualHosts)
        for (const rule of host.rules) {
          if (rule.action.kind !== 'forward') continue
          if (!rule.policies?.length && !listener.policies?.length) continue
          const settings = backendSettings(mergePolicies(listener.policies, rule.policies))
          if (!settings.pool) continue
          for (const b of rule.action.backends) {
            const base = b.target ? snapshot.pools[b.target.pool] : undefined
            if (!base) continue
            const key = variantKey(base.key, settings)
            if (!out.has(key)) out.set(key, variantIr(base, settings))
          }
        }
  // L4 routes (TCP, TLS, UDP) with backend features: the same variants (src/dataplane/l4/backends.ts)
  for (const port of snapshot.l4)
    for (const route of port.routes) {
      if (!route.policies?.length) continue
      const settings = backendSettings(route.policies)
      if (!settings.pool) continue
      for (const b of route.backends) {
        const base = b.target ? snapshot.pools[b.target.pool] : undefined
        if (!base) continue
        const key = variantKey(base.key, settings)
        if (!out.has(key)) out.set(key, variantIr(base, settings))
      }
    }
  return [...out.values()]
}
