/**
 * Runs the data planes in N worker threads. The pool is a SnapshotConsumer like a data plane:
 * apply() sends the snapshot to every worker (msgpackr, as changes: snapshot-wire.ts) and
 * resolves when all have applied it. A worker that dies is restarted and given the live
 * snapshot again, whole.
 *
 * What is shared, deliberately: the counts process-wide limits need (connections, held request
 * bytes: overload/process-gauges.ts) and rate-limit counters, in SharedArrayBuffers. Each worker
 * keeps its own endpoint registry (passive health and in-flight counts are per worker, like
 * nginx workers without a shared zone) and its own upstream connection pools.
 */
import type { HttpLimits } from './http/limits.ts'
import type { Snapshot } from '../ir/types.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { FromWorker, ToWorker } from './worker-protocol.ts'
import { SnapshotEncoder } from './snapshot-wire.ts'
import { ProcessGauges } from './overload/process-gauges.ts'
import type { RateLimitEnv } from '../policy/rate-limit/env.ts'
import type { HealthChange } from './upstream/registry.ts'
import { EMPTY_STATS, mergeStats, type DataplaneStats } from './upstream/stats.ts'
import type { TelemetryOptions } from '../telemetry/observe.ts'
import type { MetricsExport } from '../telemetry/request-metrics.ts'

export interface WorkerPoolOptions {
  readonly count: number
  /**
   * URL of the worker entry (src/worker.ts). Resolved by the caller next to the entry point,
   * because a `bun build --compile` binary only finds workers relative to its entry.
   */
  readonly workerUrl: string
  readonly hostname: string
  readonly logLevel: string
  /** HTTP request limits handed to every worker's data plane. */
  readonly limits?: Partial<HttpLimits>
  readonly logger: Logger
  /** Active health as the main thread's prober has it: sent to each worker once it is ready. */
  readonly health?: () => readonly HealthChange[]
  /** Rate-limit counters and Redis settings every worker shares (policy/rate-limit/env.ts). */
  readonly rateLimit?: RateLimitEnv
  /** Request metrics, access log and tracing settings (telemetry/observe.ts). */
  readonly telemetry?: TelemetryOptions
}

interface Slot {
  worker: Worker
  encoder: SnapshotEncoder
  ready: Promise<void>
  pending: Map<number, (msg: FromWorker) => void>
  stats: DataplaneStats
  metrics: MetricsExport | undefined
}

export class WorkerPool {
  readonly #slots: Slot[] = []
  #live: Snapshot | undefined
  #nextId = 1
  #stopping = false
  /** Consecutive quick deaths per slot, for restart backoff (a worker that cannot start must not spin). */
  readonly #crashes: number[] = []
  #restarts = 0
  /** Connection and request-buffer counts of all workers (a column each). */
  readonly #gauges: ProcessGauges

  constructor(private readonly opts: WorkerPoolOptions) {
    this.#gauges = ProcessGauges.create(opts.count)
    for (let i = 0; i < opts.count; i++) this.#slots.push(this.#spawn(i))
  }

  get size(): number {
    return this.#slots.length
  }

  /** Workers that died and were started again (portico_worker_restarts_total). */
  get restarts(): number {
    return this.#restarts
  }

  /** Test hook: make worker `index` die of an uncaught error. False when there is no such worker. */
  crashWorker(index: number): boolean {
    const slot = this.#slots[index]
    if (!slot) return false
    slot.worker.postMessage({ type: 'crash' } satisfies ToWorker)
    return true
  }

  /** Active health transitions to every worker. */
  health(changes: readonly HealthChange[]): void {
    for (const slot of this.#slots) void slot.ready.then(() => slot.worker.postMessage({ type: 'health', changes } satisfies ToWorker))
  }

  /** The workers' latest backend stats, summed. */
  stats(): DataplaneStats {
    return this.#slots.length ? mergeStats(this.#slots.map((s) => s.stats)) : EMPTY_STATS
  }

  /** The workers' latest request metrics (each cumulative; merged at scrape). */
  requestMetrics(): MetricsExport[] {
    return this.#slots.flatMap((s) => (s.metrics ? [s.metrics] : []))
  }

  async apply(snapshot: Snapshot): Promise<{ problems: readonly string[]; failedPorts: readonly number[] }> {
    this.#live = snapshot
    const results = await Promise.all(this.#slots.map((_, i) => this.#applyTo(i, snapshot)))
    // every worker binds the same ports, so identical problems are reported once
    return { problems: [...new Set(results.flatMap((r) => r.problems))], failedPorts: [...new Set(results.flatMap((r) => r.failedPorts))] }
  }

  async stop(drainMs: number): Promise<void> {
    this.#stopping = true
    await Promise.all(
      this.#slots.map(async (slot) => {
        await Promise.race([this.#request(slot, (id) => ({ type: 'stop', id, drainMs })), Bun.sleep(drainMs + 2000)])
        slot.worker.terminate()
      }),
    )
  }

  async #applyTo(index: number, snapshot: Snapshot): Promise<{ problems: string[]; failedPorts: number[] }> {
    const slot = this.#slots[index]!
    await slot.ready
    const encoded = slot.encoder.encode(forWorker(snapshot, index))
    const msg = await this.#request(slot, (id) => ({ type: 'apply', id, snapshot: encoded }))
    if (msg.type === 'applied' && msg.resync && slot === this.#slots[index]) {
      this.opts.logger.warn('data-plane worker lost track of the snapshot; sending it whole', { worker: index })
      slot.encoder.reset()
      return this.#applyTo(index, this.#live ?? snapshot)
    }
    return msg.type === 'applied' ? msg : { problems: [], failedPorts: [] }
  }

  #request(slot: Slot, build: (id: number) => ToWorker): Promise<FromWorker> {
    const id = this.#nextId++
    return new Promise((resolve) => {
      slot.pending.set(id, resolve)
      slot.worker.postMessage(build(id))
    })
  }

  #spawn(index: number): Slot {
    const worker = new Worker(this.opts.workerUrl)
    const startedAt = Date.now()
    const pending = new Map<number, (msg: FromWorker) => void>()
    let markReady: () => void = () => {}
    const ready = new Promise<void>((resolve) => (markReady = resolve))
    const slot: Slot = { worker, encoder: new SnapshotEncoder(), ready, pending, stats: EMPTY_STATS, metrics: undefined }
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const msg = event.data
      if (msg.type === 'ready') {
        const health = this.opts.health?.()
        if (health && health.length > 0) worker.postMessage({ type: 'health', changes: health } satisfies ToWorker)
        return markReady()
      }
      if (msg.type === 'stats') {
        slot.stats = msg.stats
        return
      }
      if (msg.type === 'telemetry') {
        slot.metrics = msg.metrics
        return
      }
      const done = pending.get(msg.id)
      pending.delete(msg.id)
      done?.(msg)
    }
    let exited = false
    const onExit = (why: string) => {
      if (this.#stopping || exited) return
      exited = true
      this.#restarts++
      for (const done of pending.values()) done({ type: 'applied', id: 0, problems: [`worker ${index} died: ${why}`], failedPorts: [] })
      pending.clear()
      const crashes = Date.now() - startedAt < 10_000 ? (this.#crashes[index] ?? 0) + 1 : 1
      this.#crashes[index] = crashes
      const delay = Math.min(100 * 2 ** (crashes - 1), 5000)
      // Its sockets and held bodies died with it: its counts must not hold slots of the process's limits.
      this.#gauges.forget(index)
      this.opts.logger.error('data-plane worker died; restarting it', { worker: index, why, restartInMs: delay })
      setTimeout(() => {
        if (this.#stopping) return
        this.#slots[index] = this.#spawn(index)
        if (this.#live) void this.#applyTo(index, this.#live)
      }, delay)
    }
    worker.addEventListener('error', (e) => onExit((e as ErrorEvent).message ?? 'error'))
    worker.addEventListener('close', () => onExit('exited'))
    const init: ToWorker = { type: 'init', index, hostname: this.opts.hostname, logLevel: this.opts.logLevel, limits: this.opts.limits, rateLimit: this.opts.rateLimit, telemetry: this.opts.telemetry, gauges: this.#gauges.buffer }
    worker.postMessage(init)
    return slot
  }
}

/**
 * UDP sockets and node:tls terminate listeners cannot share a port across workers the way
 * SO_REUSEPORT stream listeners can (Bun.udpSocket has no reusePort; a UDP session must stay
 * on one socket), so they run in worker 0 only.
 */
export function forWorker(snapshot: Snapshot, index: number): Snapshot {
  if (index === 0) return snapshot
  return { ...snapshot, l4: snapshot.l4.filter((p) => p.protocol !== 'UDP' && !p.routes.some((r) => r.terminate)) }
}
