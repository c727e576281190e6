/**
 * Byte links from the front to whatever answers a request: pooled keep-alive connections to an
 * upstream endpoint (the fast path), or a client connection's own link to the inner Bun.serve
 * (the full pipeline). A link only moves bytes; the client connection that owns it for the
 * exchange parses and frames them (client-connection.ts).
 *
 * Writes never block and never drop: what the socket does not take is queued in order and the
 * owner is told to stop reading its source until `drain` empties the queue.
 */
import type { Socket, SocketHandler } from 'bun'

export interface LinkOwner {
  onLinkOpen(link: Link): void
  onLinkData(link: Link, data: Uint8Array): void
  /** The link's queue emptied after a partial write: the owner may read its source again. */
  onLinkDrain(link: Link): void
  /** Closed by either side, or failed to connect (`connected` false). */
  onLinkClose(link: Link, connected: boolean, error: Error | undefined): void
  /** A handler threw (a bug): contained to this owner's connection. */
  onFailure(err: unknown): void
}

const NON_ASCII = /[^\x00-\x7f]/

/** Header strings are latin1 (one char per wire byte): ASCII goes as is, anything else byte for byte. */
export function wireBytes(text: string): string | Uint8Array {
  return NON_ASCII.test(text) ? Buffer.from(text, 'latin1') : text
}

export class Link {
  socket: Socket<Link> | undefined
  owner: LinkOwner | undefined
  closed = false
  connected = false
  /** Exchanges completed on this link (> 0: it came from the pool, and may have gone stale there). */
  served = 0
  /** Sweep tick at which it went idle in its pool. */
  idleSince = 0
  /** Writes not taken yet: before the connection opened, or after a partial write. */
  #queue: (string | Uint8Array)[] = []
  #paused = false

  constructor(
    /** The endpoint pool it returns to; undefined for a client's inner link. */
    readonly pool: LinkPool | undefined,
    readonly key: string,
  ) {}

  get backlogged(): boolean {
    return this.#queue.length > 0
  }

  /** False when the bytes were queued (the owner should pause its source until onLinkDrain). */
  write(data: string | Uint8Array): boolean {
    if (this.closed) return true
    if (!this.socket || this.#queue.length > 0) {
      this.#queue.push(data)
      return false
    }
    return this.#writeNow(data)
  }

  #writeNow(data: string | Uint8Array): boolean {
    const written = this.socket!.write(data)
    const length = typeof data === 'string' ? data.length : data.byteLength
    if (written >= length) return true
    if (written < 0) return true // closed under us: the close event reports it
    this.#queue.push(typeof data === 'string' ? Buffer.from(data, 'latin1').subarray(written) : data.subarray(written))
    return false
  }

  /** What was written but never sent because the connection never opened (a refused connect: replayable elsewhere). */
  takeUnsent(): (string | Uint8Array)[] {
    if (this.connected) return []
    const queue = this.#queue
    this.#queue = []
    return queue
  }

  /** Socket is writable again (or just opened): flush the queue in order. */
  flush(): boolean {
    const queue = this.#queue
    while (queue.length > 0) {
      const next = queue.shift()!
      if (!this.#writeNow(next)) {
        // #writeNow queued the rest at the end: move it back to the front.
        queue.unshift(queue.pop()!)
        return false
      }
    }
    return true
  }

  pause(): void {
    if (this.#paused || !this.socket) return
    this.#paused = true
    this.socket.pause()
  }

  /** Cheap when not paused (the usual case, once per exchange): no call into the socket. */
  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    this.socket?.resume()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.#queue.length = 0
    this.socket?.end()
    this.pool?.forget(this)
  }

  /** Immediate close with RST semantics where possible (a broken exchange). */
  destroy(): void {
    if (this.closed) return
    this.closed = true
    this.#queue.length = 0
    this.socket?.terminate()
    this.pool?.forget(this)
  }
}

const HANDLERS: SocketHandler<Link> = {
  open(socket) {
    const link = socket.data
    link.socket = socket
    link.connected = true
    socket.setNoDelay(true)
    if (link.closed) return void socket.end()
    link.owner?.onLinkOpen(link)
    // What was written while connecting goes out now; an owner that paused its source resumes.
    if (link.flush()) link.owner?.onLinkDrain(link)
  },
  data(socket, data) {
    const link = socket.data
    const owner = link.owner
    // Bytes on an idle pooled link: the server broke the protocol. Never hand that link out again.
    if (!owner) return link.destroy()
    try {
      owner.onLinkData(link, data)
    } catch (err) {
      link.destroy()
      owner.onFailure(err)
    }
  },
  drain(socket) {
    const link = socket.data
    try {
      if (link.flush()) link.owner?.onLinkDrain(link)
    } catch (err) {
      link.owner?.onFailure(err)
    }
  },
  close(socket, error) {
    gone(socket.data, error)
  },
  error(socket, error) {
    gone(socket.data, error)
  },
  end(socket) {
    // FIN from the server: ends a close-delimited body, kills an idle link.
    gone(socket.data, undefined)
    socket.end()
  },
  connectError(socket, error) {
    gone(socket.data, error)
  },
}

function gone(link: Link, error: Error | undefined): void {
  const wasOpen = !link.closed
  link.closed = true
  link.pool?.forget(link)
  const owner = link.owner
  link.owner = undefined
  if (owner && (wasOpen || !link.connected)) owner.onLinkClose(link, link.connected, error)
}

/** Open a link; bytes written before it connects are queued. Connect failures arrive as onLinkClose(connected=false). */
export function openLink(pool: LinkPool | undefined, key: string, hostname: string, port: number, owner: LinkOwner): Link {
  const link = new Link(pool, key)
  link.owner = owner
  pool?.track(link)
  Bun.connect<Link>({ hostname, port, data: link, socket: HANDLERS }).catch((err: unknown) => {
    // Bun reports a refused connect both here and (sometimes) through connectError: once only.
    if (link.closed) return
    gone(link, err instanceof Error ? err : new Error(String(err)))
  })
  return link
}

/**
 * Keep-alive links to one endpoint, most recently used first so a warm few stay busy and the
 * rest age out. Links idle longer than the idle timeout are closed by the sweep.
 */
export class LinkPool {
  readonly #idle: Link[] = []
  readonly #open = new Set<Link>()

  constructor(
    readonly key: string,
    readonly hostname: string,
    readonly port: number,
    readonly maxIdle: number,
  ) {}

  take(): Link | undefined {
    const idle = this.#idle
    while (idle.length > 0) {
      const link = idle.pop()!
      if (!link.closed) return link
    }
    return undefined
  }

  connect(owner: LinkOwner): Link {
    return openLink(this, this.key, this.hostname, this.port, owner)
  }

  track(link: Link): void {
    this.#open.add(link)
  }

  release(link: Link, tick: number): void {
    link.owner = undefined
    link.served++
    if (link.closed) return
    if (this.#idle.length >= this.maxIdle) return link.close()
    link.idleSince = tick
    this.#idle.push(link)
  }

  forget(link: Link): void {
    this.#open.delete(link)
    const at = this.#idle.lastIndexOf(link)
    if (at >= 0) this.#idle.splice(at, 1)
  }

  /** Close links idle since before `oldestTick`. The stack's bottom holds the least recently used. */
  sweep(oldestTick: number): void {
    while (this.#idle.length > 0 && this.#idle[0]!.idleSince < oldestTick) this.#idle[0]!.close()
  }

  get openCount(): number {
    return this.#open.size
  }

  get idleCount(): number {
    return this.#idle.length
  }

  closeAll(): void {
    for (const link of [...this.#open]) link.close()
  }
}

/** Every endpoint pool of one process (worker): endpoints are shared by whichever plan uses them. */
export class LinkPools {
  readonly #pools = new Map<string, LinkPool>()
  tick = 0
  #timer: Timer | undefined

  constructor(
    readonly maxIdlePerEndpoint = 256,
    /** Idle links older than this are closed (upstreams commonly close after 60-75 s themselves). */
    readonly idleTimeoutMs = 30_000,
    readonly sweepMs = 1_000,
  ) {}

  pool(key: string, hostname: string, port: number): LinkPool {
    let pool = this.#pools.get(key)
    if (!pool) {
      pool = new LinkPool(key, hostname, port, this.maxIdlePerEndpoint)
      this.#pools.set(key, pool)
      this.#start()
    }
    return pool
  }

  #start(): void {
    if (this.#timer) return
    const idleTicks = Math.max(1, Math.ceil(this.idleTimeoutMs / this.sweepMs))
    this.#timer = setInterval(() => {
      const tick = ++this.tick
      for (const pool of this.#pools.values()) pool.sweep(tick - idleTicks)
    }, this.sweepMs)
    this.#timer.unref()
  }

  stats(): { endpoint: string; open: number; idle: number }[] {
    return [...this.#pools.values()].map((p) => ({ endpoint: p.key, open: p.openCount, idle: p.idleCount }))
  }

  closeAll(): void {
    for (const pool of this.#pools.values()) pool.closeAll()
    this.#pools.clear()
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
