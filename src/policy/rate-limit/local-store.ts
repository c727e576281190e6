/**
 * Local rate-limit counters, shared by every thread of the process: a fixed-size hash table in
 * a SharedArrayBuffer that the main thread allocates and hands to each data-plane worker
 * (worker-pool.ts init message), so `--workers N` never means N times the limit.
 *
 * A counter is a fixed window (what Envoy's local rate limit does with a token bucket refilled
 * whole every unit, and what Envoy's ratelimit service counts in Redis): the window is
 * [k·unit, (k+1)·unit) in Unix seconds, so every thread (and every process, for Redis) agrees
 * on where windows start. Slot layout (Int32): lock, key hash a, key hash b, window end
 * (seconds since EPOCH), count. Open addressing over PROBES slots; a slot whose window has
 * ended is free. When every probed slot is live (more distinct clients than the table holds),
 * the one whose window ends first is taken over (its client starts a new count): counted in
 * the header's eviction counter.
 *
 * Per-rule metrics (allowed, limited, errors) live in a second table of the same buffer, so
 * the main thread reads what every worker counted without messages (metrics.ts).
 */

/** Seconds subtracted from Unix time so window ends fit an Int32 for a century. */
const EPOCH = 1_700_000_000
const SLOT = 5
const PROBES = 8
const HEADER = 4 // [evictions, 0, 0, 0]

export const DEFAULT_SLOTS = 65_536
export const METRIC_SLOTS = 1024
const METRIC = 6 // [hashA, hashB, allowed, limited, errors, failedOpen]

export interface LocalHit {
  /** Count in the current window after this request. */
  readonly count: number
  /** Window end, Unix seconds. */
  readonly resetAt: number
}

export class SharedCounters {
  readonly buffer: SharedArrayBuffer
  readonly #i32: Int32Array
  readonly #slots: number
  readonly #metricsAt: number

  constructor(buffer?: SharedArrayBuffer, slots = DEFAULT_SLOTS) {
    this.buffer = buffer ?? new SharedArrayBuffer((HEADER + slots * SLOT + METRIC_SLOTS * METRIC) * 4)
    this.#i32 = new Int32Array(this.buffer)
    this.#slots = (this.#i32.length - HEADER - METRIC_SLOTS * METRIC) / SLOT
    this.#metricsAt = HEADER + this.#slots * SLOT
  }

  get evictions(): number {
    return Atomics.load(this.#i32, 0)
  }

  /**
   * Adds `cost` to the counter of key (a, b) in the window of `unitSeconds` containing `nowMs`;
   * returns the count after it and when the window ends.
   */
  hit(a: number, b: number, unitSeconds: number, cost: number, nowMs: number): LocalHit {
    const i32 = this.#i32
    const nowSec = Math.floor(nowMs / 1000)
    const end = (Math.floor(nowSec / unitSeconds) + 1) * unitSeconds
    const endRel = end - EPOCH
    const nowRel = nowSec - EPOCH
    const start = (a >>> 0) % this.#slots
    let victim = -1
    let victimEnd = 0x7fffffff
    for (let p = 0; p < PROBES; p++) {
      const base = HEADER + ((start + p) % this.#slots) * SLOT
      lock(i32, base)
      const slotEnd = i32[base + 3]!
      if (i32[base + 1] === a && i32[base + 2] === b && slotEnd !== 0) {
        // our key: a new window starts the count again
        if (slotEnd !== endRel) {
          i32[base + 3] = endRel
          i32[base + 4] = 0
        }
        const count = (i32[base + 4] = i32[base + 4]! + cost)
        Atomics.store(i32, base, 0)
        return { count, resetAt: end }
      }
      if (slotEnd <= nowRel) {
        // free (never used, or its window is over)
        i32[base + 1] = a
        i32[base + 2] = b
        i32[base + 3] = endRel
        i32[base + 4] = cost
        Atomics.store(i32, base, 0)
        return { count: cost, resetAt: end }
      }
      Atomics.store(i32, base, 0)
      if (slotEnd < victimEnd) {
        victimEnd = slotEnd
        victim = base
      }
    }
    // Full around here: take over the slot whose window ends first.
    Atomics.add(i32, 0, 1)
    lock(i32, victim)
    i32[victim + 1] = a
    i32[victim + 2] = b
    i32[victim + 3] = endRel
    i32[victim + 4] = cost
    Atomics.store(i32, victim, 0)
    return { count: cost, resetAt: end }
  }

  /** The metric slot of a rule (by its key hashes), claimed on first use; -1 when the table is full. */
  metricSlot(a: number, b: number): number {
    const i32 = this.#i32
    const start = (a >>> 0) % METRIC_SLOTS
    for (let p = 0; p < METRIC_SLOTS; p++) {
      const base = this.#metricsAt + ((start + p) % METRIC_SLOTS) * METRIC
      // claim by CAS on hash a (0 = free; a hash of 0 is mapped to 1 by the caller)
      const seen = Atomics.compareExchange(i32, base, 0, a)
      if (seen === 0) {
        Atomics.store(i32, base + 1, b)
        return base
      }
      if (seen === a) {
        // claimed by another thread that may not have written b yet
        let other = Atomics.load(i32, base + 1)
        for (let spin = 0; other === 0 && spin < 1000; spin++) other = Atomics.load(i32, base + 1)
        if (other === b) return base
      }
    }
    return -1
  }

  /** Adds to a metric of a slot from metricSlot(): 2 allowed, 3 limited, 4 errors, 5 failed open. */
  count(slot: number, field: 2 | 3 | 4 | 5, by = 1): void {
    if (slot >= 0) Atomics.add(this.#i32, slot + field, by)
  }

  /** A rule's metrics, or undefined when nothing was counted for it yet. */
  readMetrics(a: number, b: number): { allowed: number; limited: number; errors: number; failedOpen: number } | undefined {
    const i32 = this.#i32
    const start = (a >>> 0) % METRIC_SLOTS
    for (let p = 0; p < METRIC_SLOTS; p++) {
      const base = this.#metricsAt + ((start + p) % METRIC_SLOTS) * METRIC
      const seen = Atomics.load(i32, base)
      if (seen === 0) return undefined
      if (seen === a && Atomics.load(i32, base + 1) === b)
        return { allowed: Atomics.load(i32, base + 2), limited: Atomics.load(i32, base + 3), errors: Atomics.load(i32, base + 4), failedOpen: Atomics.load(i32, base + 5) }
    }
    return undefined
  }
}

function lock(i32: Int32Array, base: number): void {
  // Critical sections are a few loads and stores; a holder descheduled by the OS is waited out.
  for (let spin = 0; Atomics.compareExchange(i32, base, 0, 1) !== 0; spin++) {
    if (spin > 100) Atomics.wait(i32, base, 1, 1)
  }
}

// ---------------------------------------------------------------- this thread's table

let counters: SharedCounters | undefined

/**
 * The process-wide counters: the main thread creates them (first use, or app.ts before the
 * workers start) and hands `buffer` to each worker, which calls useSharedCounters(buffer).
 */
export function sharedCounters(): SharedCounters {
  return (counters ??= new SharedCounters())
}

export function useSharedCounters(buffer: SharedArrayBuffer): void {
  if (counters?.buffer !== buffer) counters = new SharedCounters(buffer)
}
