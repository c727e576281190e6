/**
 * One keep-alive HTTP/1.1 connection to one endpoint, carrying one exchange at a time (no
 * pipelining: a response is read completely before the next request is written).
 *
 * The hot path is a small response that arrives with its head in one read: it is handed over
 * as a complete byte array and the connection goes back to the pool in the same callback, with
 * no stream and no extra promise. Bigger or slower bodies become a ReadableStream that pauses
 * the socket while its queue is full, so a slow client holds back the upstream instead of
 * filling memory.
 */
import type { Socket } from 'bun'
import { ChunkedDecoder, ChunkedDecodeError } from './chunked.ts'
import { UpstreamError } from './errors.ts'
import { hasNoBody, HeadParseError, parseResponseHead, type ResponseHead } from './response-head.ts'

export interface Http1Request {
  readonly method: string
  /** Origin-form request target: path and query. */
  readonly target: string
  /**
   * Header lines, each "name: value\r\n", with Host and without the framing headers
   * (Content-Length, Transfer-Encoding) and the blank line: the client adds those.
   */
  readonly headers: string
  readonly body: Uint8Array | ReadableStream<Uint8Array> | null
  /**
   * Content-Length to announce for a stream body, or 0 to send "content-length: 0" for an empty
   * body; a stream without it is sent chunked. Ignored for byte bodies (their length is known).
   */
  readonly bodyLength?: number
}

export interface Http1Response {
  readonly status: number
  readonly statusText: string
  /** [name, value] in wire order and case, including hop-by-hop fields. */
  readonly headers: [string, string][]
  /** Whether any field is hop-by-hop (then `headers` needs filtering before it is relayed). */
  readonly hopByHop: boolean
  readonly contentType: boolean
  /** Complete bytes when the whole body was in hand with the head; otherwise a stream; null when bodiless. */
  readonly body: Uint8Array | ReadableStream<Uint8Array> | null
  /** Times the request was written (2 when a stale pooled connection forced a replay). */
  attempts: number
}

/**
 * One request as the connection sees it. The agent implements it: settle() is called exactly
 * once per send() with the response (head delivered) or the failure, so the caller needs one
 * promise per request however many connections were tried.
 */
export interface Exchange {
  readonly req: Http1Request
  /** Milliseconds left for the response head (Infinity: no limit). */
  readonly timeoutMs: number
  /**
   * The client request: its abort ends the wait for the head. Its `signal` is read only once the
   * wait outlasts a housekeeping tick (agent.ts): Bun creates a request's AbortSignal on first
   * access, and listening costs more than most responses take to arrive.
   */
  readonly client: { readonly signal: AbortSignal } | undefined
  settle(outcome: Http1Response | UpstreamError): void
}

/** What the pool needs from a connection's owner. */
export interface ConnectionOwner {
  /** Coarse clock advanced by the agent's housekeeping timer (no Date.now() per request). */
  readonly clock: { readonly tick: number }
  /** Head timeouts at least this long are left to housekeeping (PRECISE_TIMEOUT_BELOW_MS by default). */
  readonly preciseTimeoutBelowMs: number
  release(conn: Http1Connection): void
  forget(conn: Http1Connection): void
}

const enum Phase {
  Idle,
  Head,
  Body,
}

const enum BodyMode {
  Length,
  Chunked,
  Close,
}

/**
 * Head timeouts at least this long are enforced by the agent's housekeeping tick, so they fire
 * up to one tick late (≤ 10 % with the default 500 ms tick); shorter ones get their own timer.
 */
export const PRECISE_TIMEOUT_BELOW_MS = 5_000

/** Queue bound of a response body stream; beyond it the socket is paused. */
const BODY_HIGH_WATER_BYTES = 64 * 1024
const byteLength = (chunk: Uint8Array | undefined) => chunk?.byteLength ?? 0

export class Http1Connection {
  socket: Socket<Http1Connection> | undefined
  closed = false
  /** Exchanges completed on this connection; > 0 means it was reused from the pool. */
  served = 0
  /** Clock tick at which it went idle in the pool. */
  idleSince = 0
  /** Clock tick at which the current request was written. */
  #sentAt = 0

  #phase = Phase.Idle
  #method = ''
  /** Waiting for its response head; undefined once settled. */
  #exchange: Exchange | undefined
  #timer: Timer | undefined
  /** Epoch ms by which the head must arrive, for long timeouts left to housekeeping (Infinity: none). */
  #deadline = Infinity
  #abortSignal: AbortSignal | undefined
  #onAbort: (() => void) | undefined
  /** Bytes of an incomplete response head. */
  #partial: Uint8Array | undefined
  #gotBytes = false
  #mode = BodyMode.Length
  #remaining = 0
  #chunked: ChunkedDecoder | undefined
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined
  /** Body slices collected while deciding between a complete byte array and a stream. */
  #pieces: Uint8Array[] | undefined
  #bodyComplete = false
  #reusable = false
  #requestSent = false
  #paused = false
  /** Bytes the socket did not take yet, written on drain. */
  #pending: Uint8Array[] = []
  #drainWaiters: (() => void)[] = []

  constructor(readonly owner: ConnectionOwner) {}

  attach(socket: Socket<Http1Connection>): void {
    this.socket = socket
  }

  /** Write the request; the exchange is settled with the response head (and body so far) or a failure. */
  send(exchange: Exchange): void {
    const { req, timeoutMs } = exchange
    this.#exchange = exchange
    this.#sentAt = this.owner.clock.tick
    this.#phase = Phase.Head
    this.#method = req.method
    this.#gotBytes = false
    this.#bodyComplete = false
    this.#requestSent = false
    this.#partial = undefined
    this.#chunked = undefined
    this.#controller = undefined
    this.#pieces = undefined
    // Long timeouts (the usual default of tens of seconds) are checked by the housekeeping tick:
    // no timer per request. Short ones need a precise timer.
    if (timeoutMs < this.owner.preciseTimeoutBelowMs) this.#timer = setTimeout(this.#expire, timeoutMs)
    else if (timeoutMs !== Infinity) this.#deadline = Date.now() + timeoutMs
    this.#writeRequest(req)
  }

  #writeRequest(req: Http1Request): void {
    const body = req.body
    let framing = ''
    if (body instanceof Uint8Array) framing = `content-length: ${body.byteLength}\r\n`
    else if (req.bodyLength !== undefined) framing = `content-length: ${req.bodyLength}\r\n`
    else if (body) framing = 'transfer-encoding: chunked\r\n'
    const head = `${req.method} ${req.target} HTTP/1.1\r\n${req.headers}${framing}\r\n`
    // Header values come from Bun as latin1 strings (one char per wire byte); write them back
    // the same way. Plain ASCII, the norm, goes as a string without an encode step of ours.
    const headBytes: string | Uint8Array = NON_ASCII.test(head) ? Buffer.from(head, 'latin1') : head
    if (body instanceof Uint8Array) {
      this.#write(Buffer.concat([typeof headBytes === 'string' ? Buffer.from(headBytes, 'latin1') : headBytes, body]))
      this.#requestSent = true
    } else if (body) {
      this.#write(headBytes)
      void this.#pump(body, req.bodyLength === undefined)
    } else {
      this.#write(headBytes)
      this.#requestSent = true
    }
  }

  /** Stream a request body, waiting for drain whenever the socket does not take a write whole. */
  async #pump(stream: ReadableStream<Uint8Array>, chunked: boolean): Promise<void> {
    const reader = stream.getReader()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        // The exchange ended (response complete, error, timeout): stop reading the client.
        if (this.closed || this.#phase === Phase.Idle) {
          await reader.cancel().catch(() => {})
          return
        }
        if (done) break
        if (value.byteLength === 0) continue
        const flushed = this.#write(chunked ? chunk(value) : value)
        if (!flushed) await this.#drained()
      }
      if (chunked) this.#write(LAST_CHUNK)
      this.#requestSent = true
      // The response may have completed before the upload did.
      if (this.#phase === Phase.Body && this.#bodyComplete) this.#finish()
    } catch {
      // The client's upload broke off: the upstream request is incomplete, so is the exchange.
      this.#fail(new UpstreamError('aborted', 'request body aborted'))
    }
  }

  /** True when the socket took everything. */
  #write(data: string | Uint8Array): boolean {
    const socket = this.socket
    if (!socket || this.closed) return false
    if (this.#pending.length > 0) {
      this.#pending.push(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
      return false
    }
    const written = socket.write(data)
    const total = typeof data === 'string' ? data.length : data.byteLength
    if (written >= total) return true
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
    this.#pending.push(bytes.subarray(Math.max(0, written)))
    return false
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  onDrain(): void {
    const socket = this.socket
    while (socket && this.#pending.length > 0) {
      const next = this.#pending[0]!
      const written = socket.write(next)
      if (written >= next.byteLength) {
        this.#pending.shift()
      } else {
        this.#pending[0] = next.subarray(Math.max(0, written))
        return
      }
    }
    this.#wakeDrainWaiters()
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters
    if (waiters.length === 0) return
    this.#drainWaiters = []
    for (const wake of waiters) wake()
  }

  onData(data: Uint8Array): void {
    switch (this.#phase) {
      case Phase.Head:
        this.#gotBytes = true
        this.#onHeadData(data)
        return
      case Phase.Body:
        this.#consume(data, 0)
        if (this.#bodyComplete) this.#completeBody()
        return
      case Phase.Idle:
        // Bytes nobody asked for (a server talking out of turn): the connection is unusable.
        this.destroy()
    }
  }

  #onHeadData(data: Uint8Array): void {
    let buf = data
    if (this.#partial) {
      buf = Buffer.concat([this.#partial, data])
      this.#partial = undefined
    }
    let offset = 0
    let head: ResponseHead | undefined
    try {
      for (;;) {
        head = parseResponseHead(buf, offset)
        if (!head) {
          this.#partial = buf.subarray(offset)
          return
        }
        offset = head.headEnd
        // 1xx interim responses (100 Continue, 103 Early Hints) are skipped; 101 was never asked for.
        if (head.status >= 200) break
        if (head.status === 101) throw new HeadParseError('unexpected 101 Switching Protocols')
        if (offset >= buf.length) return
      }
    } catch (err) {
      this.#fail(new UpstreamError('reset', `malformed upstream response: ${(err as Error).message}`))
      return
    }
    this.#startBody(head, buf, offset)
  }

  #startBody(head: ResponseHead, buf: Uint8Array, offset: number): void {
    this.#clearExchangeTimers()
    this.#reusable = !head.close
    if (hasNoBody(this.#method, head.status) || head.contentLength === 0) {
      // Bytes after a bodiless response belong to no request.
      if (offset < buf.length) this.#reusable = false
      this.#deliver(head, null)
      this.#finish()
      return
    }
    if (head.chunked) {
      this.#mode = BodyMode.Chunked
      this.#chunked = new ChunkedDecoder()
    } else if (head.contentLength > 0) {
      this.#mode = BodyMode.Length
      this.#remaining = head.contentLength
    } else {
      this.#mode = BodyMode.Close
      this.#reusable = false
    }
    this.#phase = Phase.Body
    this.#pieces = []
    if (offset < buf.length && !this.#consume(buf, offset)) return
    const pieces = this.#pieces
    this.#pieces = undefined
    if (this.#bodyComplete) {
      this.#deliver(head, pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces))
      this.#finish()
      return
    }
    this.#deliver(head, this.#bodyStream(pieces))
  }

  #bodyStream(initial: Uint8Array[]): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller
          for (const piece of initial) controller.enqueue(piece)
        },
        pull: () => {
          if (this.#paused && !this.closed) {
            this.#paused = false
            this.socket?.resume()
          }
        },
        cancel: () => {
          // The consumer (client) went away mid-body: the rest of it would be unread bytes.
          this.#controller = undefined
          if (this.#phase !== Phase.Body) return
          this.#phase = Phase.Idle
          this.destroy()
        },
      },
      { highWaterMark: BODY_HIGH_WATER_BYTES, size: byteLength },
    )
  }

  /** Feed body bytes; false when the exchange failed. Sets #bodyComplete at the end of the body. */
  #consume(buf: Uint8Array, offset: number): boolean {
    switch (this.#mode) {
      case BodyMode.Length: {
        const take = Math.min(this.#remaining, buf.length - offset)
        this.#emit(offset === 0 && take === buf.length ? buf : view(buf, offset, take))
        this.#remaining -= take
        if (this.#remaining === 0) {
          this.#bodyComplete = true
          if (offset + take < buf.length) this.#reusable = false
        }
        return true
      }
      case BodyMode.Chunked: {
        const decoder = this.#chunked!
        let end: number
        try {
          end = decoder.decode(buf, offset, this.#emitSlice)
        } catch (err) {
          this.#fail(new UpstreamError('reset', `malformed chunked body: ${(err as ChunkedDecodeError).message}`))
          return false
        }
        if (decoder.done) {
          this.#bodyComplete = true
          if (end < buf.length) this.#reusable = false
        }
        return true
      }
      case BodyMode.Close:
        this.#emit(offset === 0 ? buf : view(buf, offset, buf.length - offset))
        return true
    }
  }

  readonly #emitSlice = (slice: Uint8Array): void => this.#emit(slice)

  #emit(slice: Uint8Array): void {
    if (slice.byteLength === 0) return
    if (this.#pieces) {
      this.#pieces.push(slice)
      return
    }
    const controller = this.#controller
    if (!controller) return
    controller.enqueue(slice)
    if ((controller.desiredSize ?? 1) <= 0 && !this.#paused) {
      this.#paused = true
      this.socket?.pause()
    }
  }

  #completeBody(): void {
    const controller = this.#controller
    this.#controller = undefined
    controller?.close()
    this.#finish()
  }

  #deliver(head: ResponseHead, body: Uint8Array | ReadableStream<Uint8Array> | null): void {
    const exchange = this.#exchange
    this.#exchange = undefined
    exchange?.settle({ status: head.status, statusText: head.statusText, headers: head.headers, hopByHop: head.hopByHop, contentType: head.contentType, body, attempts: 1 })
  }

  /** The response is fully read: pool the connection if both directions ended cleanly. */
  #finish(): void {
    this.#bodyComplete = true
    this.#phase = Phase.Idle
    this.#clearExchangeTimers()
    // The last chunk may have filled the queue and paused the socket; nobody will pull any more,
    // and a pooled connection must read its next response.
    if (this.#paused) {
      this.#paused = false
      if (!this.closed) this.socket?.resume()
    }
    this.served++
    // A server that answered before the upload ended (413, early 401) leaves unsent bytes in the
    // request: such a connection is closed, and the pump stops reading the client.
    if (this.#reusable && this.#requestSent && !this.closed && this.#pending.length === 0) this.owner.release(this)
    else this.close()
  }

  /** Fail the exchange: reject the caller while it waits for the head, else error the body stream. */
  #fail(err: UpstreamError): void {
    if (this.#phase === Phase.Idle) return
    const exchange = this.#exchange
    const controller = this.#controller
    this.#exchange = undefined
    this.#controller = undefined
    this.#pieces = undefined
    this.#phase = Phase.Idle
    this.#clearExchangeTimers()
    this.destroy()
    if (exchange) exchange.settle(err)
    else controller?.error(err)
  }

  readonly #expire = (): void => this.#fail(new UpstreamError('timeout', 'upstream timed out waiting for response headers'))

  /** Fail the exchange if its (long) deadline passed: called by housekeeping. */
  expireIfDue(now: number): void {
    if (this.#phase === Phase.Head && this.#deadline <= now) this.#expire()
  }

  /** True while a request waits for its response head. */
  get waitingSince(): number | undefined {
    return this.#phase === Phase.Head ? this.#sentAt : undefined
  }

  /** Start listening for the client's abort (called by housekeeping for long waits). */
  watchClient(): void {
    const client = this.#exchange?.client
    if (!client || this.#abortSignal) return
    const signal = client.signal
    if (signal.aborted) return this.#fail(new UpstreamError('aborted', 'request aborted'))
    this.#abortSignal = signal
    this.#onAbort = () => this.#fail(new UpstreamError('aborted', 'request aborted'))
    signal.addEventListener('abort', this.#onAbort)
  }

  #clearExchangeTimers(): void {
    this.#deadline = Infinity
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#abortSignal) {
      this.#abortSignal.removeEventListener('abort', this.#onAbort!)
      this.#abortSignal = undefined
      this.#onAbort = undefined
    }
  }

  /** The socket closed or failed (from the socket handlers). */
  onGone(error: Error | undefined): void {
    if (this.closed) return
    this.closed = true
    this.owner.forget(this)
    this.#wakeDrainWaiters()
    switch (this.#phase) {
      case Phase.Head: {
        const stale = !this.#gotBytes && this.served > 0
        const detail = error ? `: ${error.message}` : ''
        this.#fail(new UpstreamError('reset', `upstream closed the connection before response headers${detail}`, stale, (error as { code?: string } | undefined)?.code))
        return
      }
      case Phase.Body:
        if (this.#mode === BodyMode.Close && !error) {
          this.#bodyComplete = true
          this.#completeBody()
        } else {
          this.#fail(new UpstreamError('reset', 'upstream closed the connection mid-body'))
        }
    }
  }

  /** Graceful close (FIN) of a connection that finished its exchange but is not reusable. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.owner.forget(this)
    this.#wakeDrainWaiters()
    this.socket?.end()
  }

  /** Abrupt close (RST): the exchange is abandoned midway. */
  destroy(): void {
    if (this.closed) return
    this.closed = true
    this.owner.forget(this)
    this.#wakeDrainWaiters()
    this.socket?.terminate()
  }
}

const NON_ASCII = /[^\x00-\x7f]/

/** Up to this many bytes, part of a socket read is copied rather than viewed. */
const COPY_BELOW_BYTES = 256

/**
 * Part of a socket read. Small parts (the typical API response body) are copied: Bun hands reads
 * over without a materialised ArrayBuffer, and any view of one (`buffer` getter or subarray)
 * creates it, which cost ~2 % of proxy CPU under small-GET load, more than copying a few bytes.
 */
function view(buf: Uint8Array, offset: number, length: number): Uint8Array {
  if (length > COPY_BELOW_BYTES) return buf.subarray(offset, offset + length)
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = buf[offset + i]!
  return out
}
const LAST_CHUNK = Buffer.from('0\r\n\r\n')
const CRLF = Buffer.from('\r\n')

/** One chunk of a chunked request body, framed in a single buffer (one write, one packet). */
function chunk(data: Uint8Array): Uint8Array {
  return Buffer.concat([Buffer.from(`${data.byteLength.toString(16)}\r\n`), data, CRLF])
}
