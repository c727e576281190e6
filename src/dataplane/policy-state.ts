/**
 * Policy state that must outlive a snapshot (token buckets, circuit counters, caches), keyed by
 * PolicyIr.id like endpoint state is keyed by address (upstream/registry.ts). A swap that keeps a
 * policy keeps its state, whatever else changed (a Service, a Secret, the policy's own spec:
 * the runtime decides what a spec change means for its state); compile() then forgets ids that
 * left the live plan. Per process (per worker), like the endpoint registry.
 */
import type { PolicyStateView } from '../policy/runtime.ts'

export class PolicyStateRegistry implements PolicyStateView {
  readonly #states = new Map<string, object>()
  #epoch = 0

  /**
   * Changes whenever a held state is dropped: until it changes, every state peek() returned stays
   * the one held for its id (a new id gets a new state, but that never replaces one).
   */
  get epoch(): number {
    return this.#epoch
  }

  obtain<T extends object>(id: string, create: () => T): T {
    let state = this.#states.get(id)
    if (state === undefined) {
      state = create()
      this.#states.set(id, state)
    }
    return state as T
  }

  /** The state held for `id`, if any (memoized chains check theirs is still the live one). */
  peek(id: string): object | undefined {
    return this.#states.get(id)
  }

  /** The ids that hold a state. */
  ids(): IterableIterator<string> {
    return this.#states.keys()
  }

  /** Forget these ids (compile: the ones no live rule names). */
  forget(ids: Iterable<string>): void {
    for (const id of ids)
      if (this.#states.delete(id)) this.#epoch++
  }

  get size(): number {
    return this.#states.size
  }
}
