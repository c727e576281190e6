/**
 * The control loop: store revision → translate → validate → publish to the data plane,
 * and status to every sink. A snapshot that fails validation or cannot be applied never
 * replaces the live one; the reasons are kept for the admin view and logged.
 */
import type { Snapshot } from '../ir/types.ts'
import { validateSnapshot } from '../ir/validate.ts'
import type { ResourceStore } from '../store/store.ts'
import type { StatusSink } from '../status/sink.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { ResourceView } from '../store/store.ts'
import type { TranslateResult } from '../translate/types.ts'
import { coalesce, type Coalescer } from './coalesce.ts'
import { markNotListening } from '../status/listening.ts'

/** What the controller needs from a data plane: take a whole snapshot, report what failed. */
export interface SnapshotConsumer {
  /** Resolves with problems (e.g. a port that could not be bound); none means fully applied. */
  apply(snapshot: Snapshot): Promise<{ readonly problems: readonly string[]; readonly failedPorts?: readonly number[] }>
}

export interface ControllerDeps {
  readonly store: ResourceStore
  readonly translate: (view: ResourceView) => TranslateResult
  readonly consumers: readonly SnapshotConsumer[]
  readonly sinks: readonly StatusSink[]
  readonly logger: Logger
  readonly waitMs?: number
  readonly maxWaitMs?: number
}

export class Controller {
  #live: Snapshot | undefined
  #rejected: string[] = []
  #coalescer: Coalescer
  #unsubscribe: () => void = () => {}
  #onLive: (() => void)[] = []
  #lastRebuildMs = 0
  #rebuilds = 0

  constructor(private readonly deps: ControllerDeps) {
    this.#coalescer = coalesce(() => this.rebuild(), { waitMs: deps.waitMs ?? 2, maxWaitMs: deps.maxWaitMs ?? 250 })
  }

  get live(): Snapshot | undefined {
    return this.#live
  }

  /** Wall time of the latest rebuild (translate + validate + apply), for metrics and benchmarks. */
  get lastRebuildMs(): number {
    return this.#lastRebuildMs
  }

  /** Rebuilds run so far (translate + validate + apply attempts). */
  get rebuilds(): number {
    return this.#rebuilds
  }

  get rejected(): readonly string[] {
    return this.#rejected
  }

  /** Rebuild on every store change from now on (coalesced). */
  watch(): void {
    this.#unsubscribe = this.deps.store.onChange(() => this.#coalescer.notify())
  }

  /** Ask for a rebuild even though the store did not change (e.g. load problems changed). */
  poke(): void {
    this.#coalescer.notify()
  }

  stop(): void {
    this.#unsubscribe()
    this.#coalescer.cancel()
  }

  /** Resolves once pending rebuilds are done. */
  idle(): Promise<void> {
    return this.#coalescer.idle()
  }

  onLive(fn: () => void): void {
    this.#onLive.push(fn)
  }

  async rebuild(): Promise<void> {
    const started = performance.now()
    this.#rebuilds++
    try {
      await this.#rebuild()
    } finally {
      this.#lastRebuildMs = performance.now() - started
    }
  }

  async #rebuild(): Promise<void> {
    const { logger } = this.deps
    const t0 = performance.now()
    const view = this.deps.store.view()
    let result: TranslateResult
    try {
      result = this.deps.translate(view)
    } catch (err) {
      // translate must be total; if it is not, keep serving and say so loudly
      this.#rejected = [`translation failed: ${(err as Error).stack ?? err}`]
      logger.error('translation threw; keeping the previous snapshot', { revision: view.revision, err })
      return
    }
    const t1 = performance.now()
    const problems = validateSnapshot(result.ir)
    const t2 = performance.now()
    if (problems.length) {
      this.#rejected = problems
      logger.error('snapshot failed validation; keeping the previous one', { revision: view.revision, problems })
      for (const sink of this.deps.sinks) sink.publish(result.status)
      return
    }
    const applyProblems: string[] = []
    const failedPorts = new Set<number>()
    for (const c of this.deps.consumers) {
      const applied = await c.apply(result.ir)
      applyProblems.push(...applied.problems)
      for (const p of applied.failedPorts ?? []) failedPorts.add(p)
    }
    const t3 = performance.now()
    // The new snapshot is live: let the data plane serve what waited during the rebuild before
    // status work (tens of ms at thousands of routes) takes the event loop again.
    await new Promise<void>((resolve) => setImmediate(resolve))
    const t3b = performance.now()
    // published after apply, so Programmed=True is only ever reported for ports that listen
    const status = markNotListening(result.status, view, failedPorts)
    for (const sink of this.deps.sinks) sink.publish(status)
    const t4 = performance.now()
    this.#rejected = applyProblems
    for (const p of applyProblems) logger.error('data plane could not apply part of the snapshot', { revision: view.revision, problem: p })
    const first = !this.#live
    this.#live = result.ir
    logger.info('snapshot live', {
      revision: view.revision,
      httpPorts: result.ir.http.length,
      l4Ports: result.ir.l4.length,
      pools: Object.keys(result.ir.pools).length,
      // where a rebuild spends its time, so slow reloads can be diagnosed from the log
      translateMs: Math.round(t1 - t0),
      validateMs: Math.round(t2 - t1),
      applyMs: Math.round(t3 - t2),
      statusMs: Math.round(t4 - t3b),
    })
    if (first) for (const fn of this.#onLive) fn()
  }
}
