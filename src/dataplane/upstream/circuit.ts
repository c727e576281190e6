/**
 * Per-pool limits that keep an overloaded or failing backend from taking the gateway down with
 * it: the circuit breaker (BackendTrafficPolicy `circuitBreaker`) and the retry budget (Gateway
 * API XBackendTrafficPolicy `retryConstraint`). State lives in the EndpointRegistry by pool key,
 * so it survives snapshot swaps; the limits come from the live pool's IR on every call, so an
 * edited policy applies at once. Per process: each worker counts its own (like nginx workers
 * without a shared zone), so with `--workers N` a pool takes up to N times a limit.
 *
 * Only pools with a policy touch any of this: the common pool has neither object.
 */
import type { CircuitBreakerPolicy, RetryBudget } from '../../ir/types.ts'

export type CircuitLimit = 'maxConnections' | 'maxPendingRequests' | 'maxParallelRequests' | 'maxParallelRetries'

interface Waiter {
  resolve: (admitted: boolean) => void
  done: boolean
}

export class CircuitState {
  /** Requests in flight (HTTP; each holds one upstream connection on HTTP/1.1), open connections (L4). */
  active = 0
  /** Requests queued for a connection slot. */
  pending = 0
  /** Retries in flight. */
  retries = 0
  /** Answers refused per limit (the 503s and closed L4 connections), for /metrics. */
  readonly overflows: Record<CircuitLimit, number> = { maxConnections: 0, maxPendingRequests: 0, maxParallelRequests: 0, maxParallelRetries: 0 }
  readonly #queue: Waiter[] = []

  constructor(readonly poolKey: string) {}

  /**
   * Try to take a slot now: undefined = admitted (call release() once done), 'queue' = wait
   * with acquire(), else the limit that refuses it (counted).
   */
  tryAdmit(limits: CircuitBreakerPolicy): CircuitLimit | 'queue' | undefined {
    if (this.active >= limits.maxParallelRequests) return this.#overflow('maxParallelRequests')
    if (this.active < limits.maxConnections && this.#queue.length === 0) {
      this.active++
      return undefined
    }
    if (this.pending >= limits.maxPendingRequests) return this.#overflow('maxPendingRequests')
    return 'queue'
  }

  /** Wait for a slot (after tryAdmit said 'queue'); resolves false when `signal` aborts first. */
  acquire(limits: CircuitBreakerPolicy, signal?: AbortSignal): Promise<CircuitLimit | undefined> {
    const first = this.tryAdmit(limits)
    if (first !== 'queue') return Promise.resolve(first)
    this.pending++
    return new Promise((resolve) => {
      const waiter: Waiter = {
        done: false,
        resolve: (admitted) => {
          if (waiter.done) return
          waiter.done = true
          this.pending--
          resolve(admitted ? undefined : 'maxPendingRequests')
        },
      }
      this.#queue.push(waiter)
      signal?.addEventListener('abort', () => waiter.resolve(false), { once: true })
    })
  }

  release(limits: CircuitBreakerPolicy | undefined): void {
    this.active--
    const queue = this.#queue
    while (queue.length > 0 && this.active < (limits?.maxConnections ?? Infinity)) {
      const next = queue.shift()!
      if (next.done) continue
      this.active++
      next.resolve(true)
    }
  }

  /** A retry may start: undefined = yes (call endRetry() after), else the limit. */
  tryRetry(limits: CircuitBreakerPolicy): CircuitLimit | undefined {
    if (this.retries >= limits.maxParallelRetries) return this.#overflow('maxParallelRetries')
    this.retries++
    return undefined
  }

  endRetry(): void {
    this.retries--
  }

  /** An L4 connection: over maxConnections it is refused (no queue for byte streams). */
  tryConnection(limits: CircuitBreakerPolicy): CircuitLimit | undefined {
    if (this.active >= limits.maxConnections) return this.#overflow('maxConnections')
    this.active++
    return undefined
  }

  #overflow(limit: CircuitLimit): CircuitLimit {
    this.overflows[limit]++
    return limit
  }
}

/** Sub-buckets per budget interval: the window slides in tenths. */
const SLOTS = 10

/**
 * Retries may not exceed `percent` of the requests started within `interval` (a sliding window
 * of ten slots), except that `minRetryCount` per `minRetryInterval` are always allowed, so a
 * quiet pool can still retry. Refused connects tried on another endpoint are not retries here:
 * nothing reached a backend.
 */
export class RetryBudgetState {
  readonly #requests = new Float64Array(SLOTS)
  readonly #retries = new Float64Array(SLOTS)
  #slot = 0
  #slotStart = 0
  #minWindowStart = 0
  #minWindowRetries = 0
  /** Retries the budget refused, for /metrics. */
  exhausted = 0

  request(budget: RetryBudget, now: number): void {
    this.#advance(budget, now)
    this.#requests[this.#slot]!++
  }

  /** Take one retry from the budget, or false. */
  tryRetry(budget: RetryBudget, now: number): boolean {
    this.#advance(budget, now)
    if (now - this.#minWindowStart >= budget.minRetryIntervalMs) {
      this.#minWindowStart = now
      this.#minWindowRetries = 0
    }
    let requests = 0
    let retries = 0
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i]!
      retries += this.#retries[i]!
    }
    if (retries + 1 > (budget.percent / 100) * requests && this.#minWindowRetries >= budget.minRetryCount) {
      this.exhausted++
      return false
    }
    this.#retries[this.#slot]!++
    this.#minWindowRetries++
    return true
  }

  #advance(budget: RetryBudget, now: number): void {
    const width = Math.max(1, budget.intervalMs / SLOTS)
    let steps = Math.floor((now - this.#slotStart) / width)
    if (steps <= 0) return
    if (steps > SLOTS) steps = SLOTS
    for (let i = 0; i < steps; i++) {
      this.#slot = (this.#slot + 1) % SLOTS
      this.#requests[this.#slot] = 0
      this.#retries[this.#slot] = 0
    }
    this.#slotStart = now - ((now - this.#slotStart) % width)
  }
}
