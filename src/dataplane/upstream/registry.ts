/**
 * Endpoint state that must outlive a snapshot: in-flight requests and passive health.
 *
 * Keyed by "address:port", not by IR object, so a config swap that keeps an endpoint keeps its
 * counters (Caddy's UsagePool, pingora's hash_key). Requests that started on an old plan hold a
 * reference to the same EndpointState object, so their decrements land in the right place.
 */

export interface PassiveHealthOptions {
  /** Consecutive connection failures / 5xx-by-transport before the endpoint is ejected. */
  readonly maxFailures: number
  /** How long an ejected endpoint is skipped. */
  readonly ejectMs: number
}

export class EndpointState {
  inFlight = 0
  consecutiveFailures = 0
  /** Epoch ms until which pickers skip this endpoint (0 = never ejected). */
  ejectedUntil = 0

  constructor(
    readonly key: string,
    readonly address: string,
    readonly port: number,
  ) {}

  isAvailable(now: number): boolean {
    return this.ejectedUntil <= now
  }
}

export class EndpointRegistry {
  readonly #states = new Map<string, EndpointState>()
  readonly health: PassiveHealthOptions

  constructor(health: Partial<PassiveHealthOptions> = {}) {
    this.health = { maxFailures: health.maxFailures ?? 5, ejectMs: health.ejectMs ?? 10_000 }
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

  /** Forget endpoints no longer referenced by the live plan (called after each compile). */
  retain(liveKeys: ReadonlySet<string>): void {
    for (const key of this.#states.keys()) if (!liveKeys.has(key)) this.#states.delete(key)
  }

  recordSuccess(state: EndpointState): void {
    state.consecutiveFailures = 0
  }

  recordFailure(state: EndpointState, now = Date.now()): void {
    state.consecutiveFailures++
    if (state.consecutiveFailures >= this.health.maxFailures) {
      state.ejectedUntil = now + this.health.ejectMs
      state.consecutiveFailures = 0
    }
  }

  /** Read-only view for admin/metrics. */
  list(): readonly EndpointState[] {
    return [...this.#states.values()]
  }
}

export function endpointKey(address: string, port: number): string {
  return `${address}:${port}`
}
