/**
 * Byte pipe between two Bun sockets with backpressure both ways and TCP half-close.
 *
 * Bun's socket.write() returns how many bytes the kernel took and keeps nothing itself, so the
 * remainder waits in an Outbox and the sending side is paused until `drain` empties it: at most
 * one read's worth of bytes (plus the pre-connect allowance) is ever held per direction.
 * A FIN from one side becomes a shutdown() on the other once its Outbox is empty, so
 * request/response protocols that half-close keep working.
 */

/** The subset of Bun's Socket the pipe drives (also lets tests substitute a fake). */
export interface StreamSocket {
  write(data: Uint8Array): number
  pause(): void
  resume(): void
  shutdown(): void
  end(): void
}

/** Bytes accepted from one side while the other is still connecting; past this we stop reading. */
export const PRECONNECT_BUFFER_BYTES = 256 * 1024

/** Bytes waiting for a socket that could not take them yet. */
export class Outbox {
  #chunks: Uint8Array[] = []
  bytes = 0

  get isEmpty(): boolean {
    return this.bytes === 0
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.bytes += chunk.length
  }

  /** Queue `chunk` ahead of everything else (a PROXY protocol header before the client's bytes). */
  unshift(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.#chunks.unshift(chunk)
    this.bytes += chunk.length
  }

  /** Write as much as the socket takes; true when nothing is left. */
  flushTo(socket: StreamSocket): boolean {
    while (this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!
      const written = Math.max(0, socket.write(chunk))
      this.bytes -= written
      if (written < chunk.length) {
        this.#chunks[0] = chunk.subarray(written)
        return false
      }
      this.#chunks.shift()
    }
    return true
  }

  clear(): void {
    this.#chunks = []
    this.bytes = 0
  }
}

/** One end of the splice: a socket plus the bytes queued towards it. */
export class Side {
  socket: StreamSocket | undefined
  /** Bytes from the peer waiting to be written to this socket. */
  readonly outbox = new Outbox()
  /** This socket sent FIN: nothing more will be read from it. */
  finReceived = false
  /** We shut down writing on this socket. */
  finSent = false
  closed = false
  /** Reading paused because the peer's outbox filled up. */
  paused = false

  constructor(readonly name: 'client' | 'backend') {}
}

export class Splice {
  readonly client = new Side('client')
  readonly backend = new Side('backend')
  /**
   * Set on every relayed chunk and cleared by the idle sweep: a plain store is the cheapest
   * activity mark on the per-chunk path (no clock read, no timer re-arm).
   */
  active = false
  /** Bytes read from each side (telemetry: L4 metrics and access log). */
  fromClient = 0
  fromBackend = 0
  #finished = false
  /** drainAndFinish() was called: nothing more is relayed; each side gets its FIN once its outbox is written. */
  #draining = false

  /** Called once, when both directions are done or either side failed. */
  constructor(private readonly onFinish: () => void) {}

  get finished(): boolean {
    return this.#finished
  }

  peerOf(side: Side): Side {
    return side === this.client ? this.backend : this.client
  }

  /** Bytes read from `from`: write them to its peer, or queue them and stop reading. */
  relay(from: Side, chunk: Uint8Array): void {
    this.active = true
    if (from === this.client) this.fromClient += chunk.length
    else this.fromBackend += chunk.length
    const to = this.peerOf(from)
    if (to.closed || this.#finished || this.#draining) return
    if (!to.socket) {
      to.outbox.push(chunk)
      if (to.outbox.bytes > PRECONNECT_BUFFER_BYTES) this.#pause(from)
      return
    }
    if (to.outbox.isEmpty) {
      const written = Math.max(0, to.socket.write(chunk))
      if (written === chunk.length) return
      to.outbox.push(chunk.subarray(written))
    } else {
      to.outbox.push(chunk)
    }
    this.#pause(from)
  }

  /** The socket for `side` became writable (connected, or drained). */
  writable(side: Side): void {
    if (!side.socket || side.closed || this.#finished) return
    if (!side.outbox.flushTo(side.socket)) return
    if (this.#draining) return this.peerOf(side).closed ? this.finish() : this.#shutdownWrite(side)
    const source = this.peerOf(side)
    if (source.closed) return this.finish()
    if (source.finReceived) return this.#shutdownWrite(side)
    if (source.paused) {
      source.paused = false
      source.socket?.resume()
    }
  }

  /** `side` sent FIN. Pass it on once everything it sent has been written. */
  ended(side: Side): void {
    side.finReceived = true
    const to = this.peerOf(side)
    if (to.socket && to.outbox.isEmpty) this.#shutdownWrite(to)
    this.#finishIfDone()
  }

  /** `side` is gone. Deliver what is still queued for the other side, then close it too. */
  closed(side: Side): void {
    if (side.closed) return
    side.closed = true
    side.outbox.clear()
    const other = this.peerOf(side)
    if (!other.socket || other.outbox.isEmpty) this.finish()
  }

  /**
   * End both sides cleanly (their route left the plan): nothing more is relayed, what is already
   * queued towards each side is written, then that side gets a FIN (shutdown). What still arrives
   * is read and dropped, so no unread bytes turn the final close into a reset; the splice finishes
   * once both peers have sent their FIN too. A peer that never drains or never answers with a FIN
   * is the caller's to cut with finish().
   */
  drainAndFinish(): void {
    if (this.#finished || this.#draining) return
    this.#draining = true
    // Never connected to a backend: nothing to deliver either way.
    if (!this.backend.socket) return this.finish()
    for (const side of [this.client, this.backend]) {
      if (side.closed) continue
      if (side.paused) {
        side.paused = false
        side.socket?.resume()
      }
      if (side.outbox.isEmpty) this.#shutdownWrite(side)
    }
  }

  get draining(): boolean {
    return this.#draining
  }

  /** Close both sockets now. */
  finish(): void {
    if (this.#finished) return
    this.#finished = true
    for (const side of [this.client, this.backend]) {
      side.outbox.clear()
      if (side.socket && !side.closed) {
        side.closed = true
        side.socket.end()
      }
    }
    this.onFinish()
  }

  #pause(side: Side): void {
    if (side.paused || side.closed) return
    side.paused = true
    side.socket?.pause()
  }

  #shutdownWrite(side: Side): void {
    if (side.finSent || side.closed) return
    side.finSent = true
    side.socket?.shutdown()
    this.#finishIfDone()
  }

  #finishIfDone(): void {
    const { client, backend } = this
    if (client.finReceived && backend.finReceived && client.finSent && backend.finSent) this.finish()
  }
}
