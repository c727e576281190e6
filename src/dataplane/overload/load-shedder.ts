/**
 * Load shedding (Envoy's overload manager, simplified): one timer per data plane measures how
 * late the event loop runs it, and the process's resident memory; above either threshold the
 * HTTP front answers new requests 503 with Retry-After (and closes the connection, so clients
 * and load balancers move to a less loaded instance) before queues grow and latency collapses
 * for everyone. What is already running is left alone: requests in flight, streamed responses
 * and established WebSocket sessions keep going, and the admin and probe sockets (/healthz,
 * /readyz, /metrics) are not data-plane traffic at all.
 *
 * Lag is the highest of the last two 1 s windows: a single long pause (a big GC, a sync
 * compile) turns shedding on for one to two seconds; a loop that stays late keeps it on.
 */
import { addOverloadGauges } from './metrics.ts'

export interface ShedLimits {
  /** Shed while the event loop lags more than this (ms); 0 = never for lag. */
  readonly shedEventLoopLagMs: number
  /** Shed while the process's RSS is above this (bytes); 0 = never for memory. */
  readonly shedMemoryBytes: number
}

const TICK_MS = 100
const WINDOW_TICKS = 10

export class LoadShedder {
  /** True while new requests are refused. Read on every request: a field, nothing computed. */
  overloaded = false
  /** Highest lag (ms) of the current and the previous window. */
  lagMs = 0
  rssBytes = 0
  readonly #timer: Timer | undefined
  #expected = 0
  #ticks = 0
  #windowMax = 0
  #previousMax = 0
  readonly #removeGauges: () => void

  constructor(readonly limits: ShedLimits) {
    this.#removeGauges = addOverloadGauges(() => [
      ['portico_event_loop_lag_seconds', this.lagMs / 1000],
      ['portico_overloaded', this.overloaded ? 1 : 0],
    ])
    if (limits.shedEventLoopLagMs <= 0 && limits.shedMemoryBytes <= 0) return
    this.#expected = performance.now() + TICK_MS
    this.#timer = setInterval(() => this.#tick(), TICK_MS)
    this.#timer.unref()
  }

  #tick(): void {
    const now = performance.now()
    const lag = Math.max(0, now - this.#expected)
    this.#expected = now + TICK_MS
    if (lag > this.#windowMax) this.#windowMax = lag
    this.lagMs = Math.max(this.#windowMax, this.#previousMax)
    if (++this.#ticks >= WINDOW_TICKS) {
      this.#ticks = 0
      this.#previousMax = this.#windowMax
      this.#windowMax = 0
    }
    const limits = this.limits
    // RSS is the process's (all workers): read once per tick, a syscall-free counter in Bun.
    if (limits.shedMemoryBytes > 0) this.rssBytes = process.memoryUsage.rss()
    this.overloaded = (limits.shedEventLoopLagMs > 0 && this.lagMs > limits.shedEventLoopLagMs) || (limits.shedMemoryBytes > 0 && this.rssBytes > limits.shedMemoryBytes)
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#removeGauges()
    this.overloaded = false
  }
}
