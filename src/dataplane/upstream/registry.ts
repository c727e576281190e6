/**
 * Endpoint state that must outlive a snapshot: in-flight requests and passive health, plus the
 * per-pool circuit and retry-budget counters and the active health the main thread reports.
 *
 * Keyed by "address:port" (pools: by pool key), not by IR object, so a config swap that keeps
 * an endpoint keeps its counters (Caddy's UsagePool, pingora's hash_key). Requests that started
 * on an old plan hold a reference to the same EndpointState object, so their decrements land in
 * the right place.
 */
import type { PassiveHealthCheck } from '../../ir/types.ts'
import { CircuitState, RetryBudgetState } from './circuit.ts'

export interface PassiveHealthOptions {
  /** Consecutive connection failures / 5xx-by-transport before the endpoint is ejected. */
  readonly maxFailures: number
  /** How long an ejected endpoint is skipped. */
  readonly ejectMs: number
}

/** Why an endpoint was last ejected: a refused connect is re-probed (cheap TCP connect) and re-admitted at once when it answers. */
export type EjectCause = 'refused' | 'local' | 'response'

export class EndpointState {
  inFlight = 0
  consecutiveFailures = 0
  /** 5xx responses (and local failures) in a row; gateway errors (502-504 and local failures) in a row. */
  consecutive5xx = 0
  consecutiveGateway = 0
  /** Epoch ms until which pickers skip this endpoint (0 = never ejected). */
  ejectedUntil = 0
  /** Recent ejections (decays one per passive interval): the ejection time multiplier. */
  ejections = 0
  lastEjectedAt = 0
  ejectCause: EjectCause | undefined

  constructor(
    readonly key: string,
    readonly address: string,
    readonly port: number,
  ) {}

  isAvailable(now: number): boolean {
    return this.ejectedUntil <= now
  }
}

/** Active health of one endpoint under one check configuration, as the main thread's prober reports it. */
export class HealthCell {
  healthy = true
  constructor(
    readonly checkId: string,
    readonly endpoint: string,
  ) {}
}

/** [checkId, endpoint key, healthy]: what the prober sends (to workers, or straight to registries). */
export type HealthChange = readonly [string, string, boolean]

/**
 * Active health, shared by the HTTP and L4 registries of one process (worker) so one report
 * reaches both. Cells are created on first sight (healthy) and live as long as the table.
 */
export class HealthTable {
  readonly #cells = new Map<string, HealthCell>()
  readonly #registries = new Set<EndpointRegistry>()

  cell(checkId: string, endpoint: string): HealthCell {
    const key = `${checkId}|${endpoint}`
    let cell = this.#cells.get(key)
    if (!cell) this.#cells.set(key, (cell = new HealthCell(checkId, endpoint)))
    return cell
  }

  attach(registry: EndpointRegistry): void {
    this.#registries.add(registry)
  }

  apply(changes: readonly HealthChange[]): void {
    for (const [checkId, endpoint, healthy] of changes) {
      this.cell(checkId, endpoint).healthy = healthy
      // A passing active check re-admits a passively ejected endpoint (Envoy's
      // successful_active_health_check_uneject_host).
      if (healthy) for (const registry of this.#registries) registry.uneject(endpoint)
    }
  }

  list(): readonly HealthCell[] {
    return [...this.#cells.values()]
  }
}

/** How often an endpoint ejected for refusing connections is tried again (a TCP connect). */
export const RECOVERY_PROBE_MS = 500

export class EndpointRegistry {
  readonly #states = new Map<string, EndpointState>()
  readonly #circuits = new Map<string, CircuitState>()
  readonly #budgets = new Map<string, RetryBudgetState>()
  readonly health: PassiveHealthOptions
  /** The passive settings of pools without a policy: today's fixed thresholds. */
  readonly defaultPassive: PassiveHealthCheck
  readonly activeHealth: HealthTable
  /** Endpoints ejected for refusing connections, re-probed until they accept one. */
  readonly #recovering = new Set<EndpointState>()
  #recoveryTimer: Timer | undefined

  constructor(health: Partial<PassiveHealthOptions> = {}, activeHealth = new HealthTable()) {
    this.health = { maxFailures: health.maxFailures ?? 5, ejectMs: health.ejectMs ?? 10_000 }
    this.defaultPassive = {
      consecutive5xxErrors: 0,
      consecutiveGatewayErrors: 0,
      consecutiveLocalOriginFailures: this.health.maxFailures,
      intervalMs: this.health.ejectMs,
      baseEjectionTimeMs: this.health.ejectMs,
      maxEjectionPercent: 100,
    }
    this.activeHealth = activeHealth
    activeHealth.attach(this)
  }

  /** The state for an endpoint, created on first sight. */
  endpoint(address: string, port: number): EndpointState {
    const key = endpointKey(address, port)
    let state = this.#states.get(key)
    if (!state) {
      state = new EndpointState(key, address, port)
      this.#states.set(key, state)
    }
    return state
  }

  /** Circuit counters of a pool (kept across swaps while the pool key is live). */
  circuit(poolKey: string): CircuitState {
    let state = this.#circuits.get(poolKey)
    if (!state) this.#circuits.set(poolKey, (state = new CircuitState(poolKey)))
    return state
  }

  budget(poolKey: string): RetryBudgetState {
    let state = this.#budgets.get(poolKey)
    if (!state) this.#budgets.set(poolKey, (state = new RetryBudgetState()))
    return state
  }

  /** Forget endpoints no longer referenced by the live plan (called after each compile). */
  retain(liveKeys: ReadonlySet<string>, livePools?: ReadonlySet<string>): void {
    for (const key of this.#states.keys()) if (!liveKeys.has(key)) this.#states.delete(key)
    for (const state of this.#recovering) if (!liveKeys.has(state.key)) this.#recovering.delete(state)
    if (livePools) {
      for (const key of this.#circuits.keys()) if (!livePools.has(key)) this.#circuits.delete(key)
      for (const key of this.#budgets.keys()) if (!livePools.has(key)) this.#budgets.delete(key)
    }
  }

  recordSuccess(state: EndpointState): void {
    state.consecutiveFailures = 0
    state.consecutive5xx = 0
    state.consecutiveGateway = 0
  }

  /** A connect failure, reset or timeout with the built-in thresholds (pools without a passive policy). */
  recordFailure(state: EndpointState, now = Date.now(), cause: EjectCause = 'local'): void {
    state.consecutiveFailures++
    if (state.consecutiveFailures >= this.health.maxFailures) {
      this.eject(state, this.health.ejectMs, cause, now)
      state.consecutiveFailures = 0
    }
  }

  /** Skip the endpoint for `ms`; a refused one is re-probed and re-admitted as soon as it accepts a connection. */
  eject(state: EndpointState, ms: number, cause: EjectCause, now = Date.now()): void {
    state.ejectedUntil = now + ms
    state.lastEjectedAt = now
    state.ejectCause = cause
    if (cause === 'refused') this.#recover(state)
  }

  /** Back in rotation now (an active check passed, or the recovery probe connected). */
  uneject(key: string): void {
    const state = this.#states.get(key)
    if (!state || state.ejectedUntil === 0) return
    state.ejectedUntil = 0
    state.consecutiveFailures = state.consecutive5xx = state.consecutiveGateway = 0
    this.#recovering.delete(state)
  }

  #recover(state: EndpointState): void {
    this.#recovering.add(state)
    if (this.#recoveryTimer) return
    this.#recoveryTimer = setInterval(() => this.#probeRecovering(), RECOVERY_PROBE_MS)
    this.#recoveryTimer.unref()
  }

  #probeRecovering(): void {
    const now = Date.now()
    for (const state of this.#recovering) {
      if (state.ejectedUntil <= now) {
        this.#recovering.delete(state)
        continue
      }
      Bun.connect({
        hostname: state.address,
        port: state.port,
        socket: {
          open: (socket) => {
            socket.end()
            if (this.#states.get(state.key) === state) this.uneject(state.key)
          },
          data() {},
          connectError() {},
          error() {},
        },
      }).catch(() => {})
    }
    if (this.#recovering.size === 0) {
      clearInterval(this.#recoveryTimer)
      this.#recoveryTimer = undefined
    }
  }

  /** Read-only view for admin/metrics. */
  list(): readonly EndpointState[] {
    return [...this.#states.values()]
  }

  circuits(): readonly CircuitState[] {
    return [...this.#circuits.values()]
  }

  budgets(): readonly (readonly [string, RetryBudgetState])[] {
    return [...this.#budgets.entries()]
  }

  stop(): void {
    clearInterval(this.#recoveryTimer)
    this.#recoveryTimer = undefined
    this.#recovering.clear()
  }
}

export function endpointKey(address: string, port: number): string {
  return `${address}:${port}`
}
