/** Runtime pool: the IR pool's ready endpoints bound to registry state, plus one picker. */
import type { ActiveHealthCheck, BackendPool, CircuitBreakerPolicy, LoadBalancerPolicy, PassiveHealthCheck, RetryBudget } from '../../ir/types.ts'
import type { EndpointRegistry, EndpointState } from './registry.ts'
import type { PickInput, Picker, PoolMember } from './policies/picker.ts'
import { RoundRobinPicker } from './policies/round-robin.ts'
import { RandomPicker } from './policies/random.ts'
import { LeastRequestPicker } from './policies/least-request.ts'
import { ConsistentHashPicker } from './policies/consistent-hash.ts'
import { subjectAltNameCheck, type IdentityCheck } from './backend-identity.ts'
import type { CircuitState, RetryBudgetState } from './circuit.ts'

/** fetch()'s `tls` option for re-encryption to the backend (BackendTLSPolicy). */
export interface UpstreamTls {
  readonly serverName: string
  readonly ca?: string
  /** Set when the policy lists subjectAltNames: they replace the hostname check. */
  readonly checkServerIdentity?: IdentityCheck
}

/** What one attempt on an endpoint came to, for passive health. */
export type AttemptOutcome =
  /** Connect failed: the request never reached the backend. */
  | 'refused'
  /** Reset or closed before a response head, or no head in time. */
  | 'local'
  /** A response head with this status. */
  | number

/** ConsistentHash Cookie with a ttl: the cookie the gateway sets when the client has none. */
export interface HashCookie {
  readonly name: string
  /** "; Max-Age=...; Path=/..." appended to name=value. */
  readonly attributes: string
}

export class RuntimePool {
  /** Per-process circuit counters (only for pools with a circuitBreaker). */
  readonly circuit: CircuitState | undefined
  readonly limits: CircuitBreakerPolicy | undefined
  readonly budget: RetryBudgetState | undefined
  readonly retryBudget: RetryBudget | undefined
  readonly passive: PassiveHealthCheck
  readonly cookie: HashCookie | undefined

  constructor(
    readonly key: string,
    readonly ir: BackendPool,
    readonly members: readonly PoolMember[],
    readonly picker: Picker,
    readonly tls: UpstreamTls | undefined,
    private readonly registry?: EndpointRegistry,
  ) {
    this.limits = ir.circuitBreaker
    this.circuit = ir.circuitBreaker && registry ? registry.circuit(key) : undefined
    this.retryBudget = ir.retryBudget
    this.budget = ir.retryBudget && registry ? registry.budget(key) : undefined
    this.passive = ir.healthCheck?.passive ?? registry?.defaultPassive ?? DEFAULT_PASSIVE
    const policy = ir.policy
    this.cookie =
      policy.type === 'ConsistentHash' && policy.source === 'Cookie' && policy.name && policy.cookieTtlSeconds !== undefined
        ? { name: policy.name, attributes: cookieAttributes(policy.cookieTtlSeconds, policy.cookieAttributes) }
        : undefined
  }

  pick(input: PickInput): PoolMember | undefined {
    return this.picker.pick(input)
  }

  /** The pool's member for an endpoint state (the front keeps states). */
  memberOf(state: EndpointState): PoolMember | undefined {
    for (const member of this.members) if (member.state === state) return member
    return undefined
  }

  /**
   * Passive health: count an attempt's outcome against the pool's thresholds (its
   * BackendTrafficPolicy `healthCheck.passive`, else the built-in 5 local failures / 10 s), and
   * eject the endpoint when one is reached, unless that would exceed maxEjectionPercent (never
   * the whole pool).
   */
  outcome(state: EndpointState, outcome: AttemptOutcome, now = Date.now()): void {
    const p = this.passive
    if (typeof outcome === 'number') {
      if (outcome < 500) {
        if (state.consecutiveFailures !== 0 || state.consecutive5xx !== 0 || state.consecutiveGateway !== 0) {
          state.consecutiveFailures = state.consecutive5xx = state.consecutiveGateway = 0
        }
        return
      }
      // A 5xx: ends a run of local failures, counts towards the response thresholds.
      state.consecutiveFailures = 0
      const gateway = outcome === 502 || outcome === 503 || outcome === 504
      state.consecutive5xx++
      if (gateway) state.consecutiveGateway++
      else state.consecutiveGateway = 0
      if ((p.consecutive5xxErrors > 0 && state.consecutive5xx >= p.consecutive5xxErrors) || (gateway && p.consecutiveGatewayErrors > 0 && state.consecutiveGateway >= p.consecutiveGatewayErrors))
        this.#eject(state, 'response', now)
      return
    }
    // Local-origin failure: Envoy (without split_external_local_origin_errors) counts it as a 5xx and a gateway error too.
    state.consecutiveFailures++
    state.consecutive5xx++
    state.consecutiveGateway++
    if (
      (p.consecutiveLocalOriginFailures > 0 && state.consecutiveFailures >= p.consecutiveLocalOriginFailures) ||
      (p.consecutive5xxErrors > 0 && state.consecutive5xx >= p.consecutive5xxErrors) ||
      (p.consecutiveGatewayErrors > 0 && state.consecutiveGateway >= p.consecutiveGatewayErrors)
    )
      this.#eject(state, outcome === 'refused' ? 'refused' : 'local', now)
  }

  #eject(state: EndpointState, cause: 'refused' | 'local' | 'response', now: number): void {
    state.consecutiveFailures = state.consecutive5xx = state.consecutiveGateway = 0
    if (state.ejectedUntil > now) return
    const n = this.members.length
    let ejected = 0
    for (const member of this.members) if (member.state.ejectedUntil > now) ejected++
    const cap = Math.min(n - 1, Math.max(1, Math.floor((n * this.passive.maxEjectionPercent) / 100)))
    if (ejected >= cap) return
    const p = this.passive
    // Ejections decay by one per interval without one; each recent one lengthens the next (Envoy).
    const decayed = p.intervalMs > 0 ? Math.floor((now - state.lastEjectedAt) / p.intervalMs) : state.ejections
    state.ejections = Math.max(0, state.ejections - decayed) + 1
    const ms = p.baseEjectionTimeMs * Math.min(state.ejections, 10)
    if (this.registry) this.registry.eject(state, ms, cause, now)
    else {
      state.ejectedUntil = now + ms
      state.lastEjectedAt = now
      state.ejectCause = cause
    }
  }
}

const DEFAULT_PASSIVE: PassiveHealthCheck = {
  consecutive5xxErrors: 0,
  consecutiveGatewayErrors: 0,
  consecutiveLocalOriginFailures: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 10_000,
  maxEjectionPercent: 100,
}

export function buildPool(ir: BackendPool, registry: EndpointRegistry): RuntimePool {
  const scheme = ir.protocol === 'https' || ir.tls ? 'https' : 'http'
  const active = ir.healthCheck?.active
  const checkId = active ? activeCheckId(active) : undefined
  const members: PoolMember[] = ir.endpoints.map((ep) => {
    const state = registry.endpoint(ep.address, ep.port)
    return {
      state,
      origin: `${scheme}://${ep.address.includes(':') ? `[${ep.address}]` : ep.address}:${ep.port}`,
      ...(checkId ? { health: registry.activeHealth.cell(checkId, state.key) } : {}),
    }
  })
  const tls = ir.tls
    ? {
        serverName: ir.tls.hostname,
        ...(ir.tls.caPem ? { ca: ir.tls.caPem } : {}),
        ...(ir.tls.subjectAltNames.length ? { checkServerIdentity: subjectAltNameCheck(ir.tls.subjectAltNames) } : {}),
      }
    : undefined
  return new RuntimePool(ir.key, ir, members, buildPicker(ir.policy, members), tls, registry)
}

export function buildPicker(policy: LoadBalancerPolicy, members: readonly PoolMember[]): Picker {
  switch (policy.type) {
    case 'Random':
      return new RandomPicker(members)
    case 'LeastRequest':
      return new LeastRequestPicker(members)
    case 'ConsistentHash':
      return new ConsistentHashPicker(members, policy.source, policy.name, policy.tableSize)
    case 'RoundRobin':
    default:
      return new RoundRobinPicker(members)
  }
}

/**
 * Identity of an active check configuration: pools (variants of one Service, or different
 * Services on one address) with the same settings share one prober per endpoint, and the
 * prober (main thread) and the data planes (workers) name its results the same way.
 */
export function activeCheckId(check: ActiveHealthCheck): string {
  return Bun.hash(JSON.stringify([check.type, check.intervalMs, check.timeoutMs, check.unhealthyThreshold, check.healthyThreshold, check.http ?? null])).toString(36)
}

function cookieAttributes(ttlSeconds: number, extra: readonly (readonly [string, string])[] | undefined): string {
  let out = ttlSeconds > 0 ? `; Max-Age=${ttlSeconds}` : ''
  const names = new Set((extra ?? []).map(([n]) => n.toLowerCase()))
  if (!names.has('path')) out += '; Path=/'
  for (const [name, value] of extra ?? []) out += value === '' ? `; ${name}` : `; ${name}=${value}`
  return `${out}; HttpOnly`
}
