/**
 * What the process-wide limits count, shared by every data-plane worker: open client
 * connections (in total, per listener port, per client address), the accept-rate bucket and the
 * request body bytes held by request buffering. A SharedArrayBuffer the worker pool allocates
 * and hands to each worker (worker-pool.ts init message), like the rate-limit counters
 * (policy/rate-limit/local-store.ts), so `--workers N` never means N times a limit.
 *
 * Each worker counts in its own column and a limit compares the sum of the columns: a worker
 * that dies takes its sockets with it, and the pool zeroes its column (`forget`) before the
 * restarted worker counts again, so a crash never leaves slots taken.
 *
 * One lock for all of it: each critical section is a few loads and stores, taken once per
 * accepted or closed connection and per held body chunk (never per request), so the checks and
 * the counts move together and no two workers can both take the last slot.
 *
 * Layout (Int32 index unless said): 0 lock, 2 workers (N); f64 index 2 accept tokens, 3 tokens
 * refilled at (epoch ms); then N open counts, N held byte counts (f64), the listener table
 * (LISTENER_SLOTS keys port + 1, then LISTENER_SLOTS × N counts) and the client table
 * (CLIENT_SLOTS × [hash a, hash b, N counts]): open addressing over CLIENT_PROBES slots, a slot
 * whose counts are all 0 free for any address. When every probed slot is taken (more distinct
 * addresses with open connections than the table holds nearby) the connection is admitted
 * without a per-address count: that cap fails open, the others hold.
 */
import type { GateLimits } from './connection-gate.ts'
import type { RefuseReason } from './metrics.ts'

const LOCK = 0
const WORKERS = 2
const TOKENS = 2
const REFILLED_AT = 3
const OPEN_AT = 8
const LISTENER_SLOTS = 256
export const CLIENT_SLOTS = 16_384
const CLIENT_PROBES = 32

interface Layout {
  readonly workers: number
  /** f64 index of the held byte counts. */
  readonly heldAt: number
  readonly listenerKeysAt: number
  readonly listenerCountsAt: number
  readonly clientsAt: number
  readonly clientSlot: number
  readonly bytes: number
}

function layout(workers: number): Layout {
  const heldAt = Math.ceil(((OPEN_AT + workers) * 4) / 8)
  const listenerKeysAt = (heldAt + workers) * 2
  const listenerCountsAt = listenerKeysAt + LISTENER_SLOTS
  const clientsAt = listenerCountsAt + LISTENER_SLOTS * workers
  const clientSlot = 2 + workers
  return { workers, heldAt, listenerKeysAt, listenerCountsAt, clientsAt, clientSlot, bytes: (clientsAt + CLIENT_SLOTS * clientSlot) * 4 }
}

export class ProcessGauges {
  readonly buffer: SharedArrayBuffer
  readonly #i32: Int32Array
  readonly #f64: Float64Array
  readonly #l: Layout
  /** This thread's column. */
  readonly #me: number

  /** Gauges for `workers` threads (the pool, or one data plane on its own: 1). */
  static create(workers = 1): ProcessGauges {
    const l = layout(workers)
    const buffer = new SharedArrayBuffer(l.bytes)
    new Int32Array(buffer)[WORKERS] = workers
    return new ProcessGauges(buffer, 0)
  }

  /** The process's gauges as worker `index` counts in them. */
  constructor(buffer: SharedArrayBuffer, index: number) {
    this.buffer = buffer
    this.#i32 = new Int32Array(buffer)
    this.#l = layout(this.#i32[WORKERS]!)
    this.#f64 = new Float64Array(buffer, 0, this.#l.heldAt + this.#l.workers)
    if (index < 0 || index >= this.#l.workers) throw new RangeError(`worker ${index} of ${this.#l.workers}`)
    this.#me = index
  }

  /** Connections open in the whole process. */
  get open(): number {
    let n = 0
    for (let w = 0; w < this.#l.workers; w++) n += Atomics.load(this.#i32, OPEN_AT + w)
    return n
  }

  /** Request body bytes held in the whole process. */
  get held(): number {
    this.#lock()
    const held = this.#heldSum()
    this.#unlock()
    return held
  }

  /** The slot counting a listener port's connections (claimed once per port), or -1 when the table is full. */
  listenerSlot(port: number): number {
    const key = port + 1
    for (let i = 0; i < LISTENER_SLOTS; i++) {
      const slot = (port + i) % LISTENER_SLOTS
      const seen = Atomics.compareExchange(this.#i32, this.#l.listenerKeysAt + slot, 0, key)
      if (seen === 0 || seen === key) return slot
    }
    return -1
  }

  /** Connections open on a listener (its slot from listenerSlot), all workers. */
  listenerOpen(slot: number): number {
    if (slot < 0) return 0
    let n = 0
    const at = this.#l.listenerCountsAt + slot * this.#l.workers
    for (let w = 0; w < this.#l.workers; w++) n += Atomics.load(this.#i32, at + w)
    return n
  }

  /** Connections open from an address, all workers. */
  openFrom(ip: string): number {
    this.#lock()
    const at = this.#findClient(hashA(ip), hashB(ip), false)
    const n = at < 0 ? 0 : this.#sum(at + 2)
    this.#unlock()
    return n
  }

  /** Admit a connection from `ip` on the listener of `slot` (its cap `listenerCap`, 0: none), or say which limit refuses it. */
  admit(ip: string, slot: number, listenerCap: number, limits: GateLimits): RefuseReason | undefined {
    const i32 = this.#i32
    const l = this.#l
    const perClient = limits.maxConnectionsPerClient
    const a = perClient > 0 ? hashA(ip) : 0
    const b = perClient > 0 ? hashB(ip) : 0
    const listenerAt = slot < 0 ? -1 : l.listenerCountsAt + slot * l.workers
    this.#lock()
    try {
      if (listenerCap > 0 && listenerAt >= 0 && this.#sum(listenerAt) >= listenerCap) return 'listener'
      if (limits.maxConnections > 0 && this.#sum(OPEN_AT) >= limits.maxConnections) return 'process'
      let client = -1
      if (perClient > 0) {
        client = this.#findClient(a, b, true)
        if (client >= 0 && this.#sum(client + 2) >= perClient) return 'client'
      }
      if (limits.maxAcceptRate > 0 && !this.#takeToken(limits.maxAcceptRate)) return 'rate'
      i32[OPEN_AT + this.#me]!++
      if (listenerAt >= 0) i32[listenerAt + this.#me]!++
      if (client >= 0) {
        i32[client] = a
        i32[client + 1] = b
        i32[client + 2 + this.#me]!++
      }
      return undefined
    } finally {
      this.#unlock()
    }
  }

  /**
   * Give back what admit() took (`perClient`: addresses were counted). A connection admitted
   * without a per-address count (table full) gives back one of its address's, if any: one more
   * connection for that address, never a stuck slot.
   */
  release(ip: string, slot: number, perClient: boolean): void {
    const i32 = this.#i32
    const l = this.#l
    const a = perClient ? hashA(ip) : 0
    const b = perClient ? hashB(ip) : 0
    this.#lock()
    i32[OPEN_AT + this.#me]!--
    if (slot >= 0) i32[l.listenerCountsAt + slot * l.workers + this.#me]!--
    if (perClient) {
      const at = this.#findClient(a, b, false)
      if (at >= 0 && i32[at + 2 + this.#me]! > 0) i32[at + 2 + this.#me]!--
    }
    this.#unlock()
  }

  /** Hold `bytes` more of request bodies; false (nothing counted) when the process's total would pass `limit` (0: none). */
  hold(bytes: number, limit: number): boolean {
    const f64 = this.#f64
    this.#lock()
    const ok = limit <= 0 || this.#heldSum() + bytes <= limit
    if (ok) f64[this.#l.heldAt + this.#me] = f64[this.#l.heldAt + this.#me]! + bytes
    this.#unlock()
    return ok
  }

  unhold(bytes: number): void {
    if (bytes === 0) return
    const f64 = this.#f64
    this.#lock()
    f64[this.#l.heldAt + this.#me] = f64[this.#l.heldAt + this.#me]! - bytes
    this.#unlock()
  }

  /** Worker `index` died (with its sockets and held bodies): nothing it counted is open any more. */
  forget(index: number): void {
    const i32 = this.#i32
    const l = this.#l
    this.#lock()
    i32[OPEN_AT + index] = 0
    this.#f64[l.heldAt + index] = 0
    for (let s = 0; s < LISTENER_SLOTS; s++) i32[l.listenerCountsAt + s * l.workers + index] = 0
    for (let s = 0; s < CLIENT_SLOTS; s++) i32[l.clientsAt + s * l.clientSlot + 2 + index] = 0
    this.#unlock()
  }

  /** Sum of the N worker columns starting at `at`. Under the lock (or racy reads for a gauge). */
  #sum(at: number): number {
    let n = 0
    for (let w = 0; w < this.#l.workers; w++) n += this.#i32[at + w]!
    return n
  }

  #heldSum(): number {
    let n = 0
    for (let w = 0; w < this.#l.workers; w++) n += this.#f64[this.#l.heldAt + w]!
    return n
  }

  /** The address's slot, else (`claim`) a free one near it; -1 when there is neither. Under the lock. */
  #findClient(a: number, b: number, claim: boolean): number {
    const i32 = this.#i32
    const l = this.#l
    const start = (a >>> 0) % CLIENT_SLOTS
    let free = -1
    for (let p = 0; p < CLIENT_PROBES; p++) {
      const at = l.clientsAt + ((start + p) % CLIENT_SLOTS) * l.clientSlot
      const open = this.#sum(at + 2)
      if (open > 0 && i32[at] === a && i32[at + 1] === b) return at
      if (open === 0 && free < 0) free = at
    }
    return claim ? free : -1
  }

  /** Token bucket refilled by elapsed time at each accept (no timer; epoch ms: every thread has the same clock). */
  #takeToken(rate: number): boolean {
    const f64 = this.#f64
    const now = Date.now()
    // Never used: a full bucket (one second's worth).
    const last = f64[REFILLED_AT]!
    const tokens = last === 0 ? rate : Math.min(rate, f64[TOKENS]! + ((now - last) * rate) / 1000)
    f64[REFILLED_AT] = now
    if (tokens < 1) {
      f64[TOKENS] = tokens
      return false
    }
    f64[TOKENS] = tokens - 1
    return true
  }

  #lock(): void {
    const i32 = this.#i32
    for (let spin = 0; Atomics.compareExchange(i32, LOCK, 0, 1) !== 0; spin++) {
      // A holder descheduled by the OS is waited out rather than spun on.
      if (spin > 100) Atomics.wait(i32, LOCK, 1, 1)
    }
  }

  #unlock(): void {
    Atomics.store(this.#i32, LOCK, 0)
  }
}

/** Two independent 32-bit FNV-1a hashes of an address: a slot matches only when both do. */
function hashA(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h
}

function hashB(text: string): number {
  let h = 0x050c5d1f
  for (let i = text.length - 1; i >= 0; i--) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h
}
