/**
 * Requests that must never reach a backend, answered with the standard status before routing
 * (rejectMalformed), and the body limits enforced after routing (guardBody).
 *
 * Bun's parser already answers what it can see on the wire (measured on 1.4.5): 400 for CL+TE,
 * duplicate/invalid Content-Length, bad chunk sizes, obs-fold, bare CR, NUL and control bytes,
 * a missing Host on HTTP/1.1, any Transfer-Encoding but chunked (the spec says 501; Bun's 400
 * comes before any JS runs); 505 for unknown versions; 431 for a head over 16 KiB; 413 past its
 * maxRequestBodySize. What it lets through is checked here.
 */
import type { HttpLimits } from './limits.ts'

/** A local error answer that also ends the connection: what follows on it cannot be trusted. */
export function closingError(status: number, message: string): Response {
  return new Response(`${message}\n`, { status, headers: { 'content-type': 'text/plain; charset=utf-8', connection: 'close' } })
}

/**
 * RFC 3986 host [":" port]: an IP literal, or reg-name characters. A comma is how Bun merges
 * two Host headers ("a, b"); it is legal in a reg-name but no real host has one, and nginx and
 * Envoy also refuse duplicate Host.
 */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9._~!$&'()*+;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/

/** DEL is a control character (RFC 9110 §5.5) that Bun's parser lets through in field values. */
const DEL = '\x7f'

const GUARDED_URL = 'http://guarded-body.invalid/'

/** The part of a stream reader the guard uses (Bun's and the DOM's reader types disagree on details). */
interface BodyReader {
  read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }>
  cancel(reason?: unknown): Promise<void>
}

/**
 * Pre-routing checks, cheapest first; undefined when the request may proceed. `host` is the Host
 * header, read once by the caller (every header read is a native call).
 */
export function rejectMalformed(req: Request, host: string | null, limits: HttpLimits, checkHeaderBytes: boolean): Response | undefined {
  if (host !== null && !VALID_HOST.test(host)) return closingError(400, host.includes(',') ? 'duplicate Host header' : 'invalid Host header')
  if (targetLength(req.url) > limits.maxRequestTargetBytes) return closingError(414, 'request-target too long')
  // One pass over the fields collects what the checks below need (no get() per field).
  scan.bytes = 0
  scan.control = false
  scan.length = null
  scan.coding = null
  scan.upgrade = false
  req.headers.forEach(scanField)
  // Bun accepts identical duplicates ("5, 5" once merged) but a backend would not: nginx refuses them too.
  const length = scan.length as string | null
  if (length !== null && length.includes(',')) return closingError(400, 'duplicate Content-Length header')
  const te = scan.coding as string | null
  // Unreachable over HTTP/1.1 on Bun 1.4.5 (its parser answers 400 first); kept for other parsers.
  if (te !== null && te.toLowerCase() !== 'chunked') return closingError(501, 'transfer-encoding not implemented')
  if (scan.control) return closingError(400, 'control character in header')
  if (checkHeaderBytes && scan.bytes > limits.maxHeaderBytes) return closingError(431, 'request header fields too large')
  return undefined
}

/**
 * What one pass over the request fields found. Module state and a module-level callback, so the
 * pass allocates no closure per request: forEach runs synchronously, nothing can interleave.
 */
const scan = { bytes: 0, control: false, length: null as string | null, coding: null as string | null, upgrade: false }

/** Whether the request rejectMalformed last let through has an Upgrade header: read right after it, same tick. */
export function sawUpgradeHeader(): boolean {
  return scan.upgrade
}

function scanField(value: string, name: string): void {
  scan.bytes += name.length + value.length + 4
  if (value.includes(DEL)) scan.control = true
  // Bun hands names lower-cased; the length test keeps most names from being compared at all.
  if (name.length === 14 && name === 'content-length') scan.length = value
  else if (name.length === 17 && name === 'transfer-encoding') scan.coding = value
  else if (name.length === 7 && name === 'upgrade') scan.upgrade = true
}

/** Bytes of the request-target in Bun's req.url: absolute ("http://host/p?q") or, without a Host, "/p?q". */
function targetLength(url: string): number {
  const schemeEnd = url.indexOf('://')
  if (schemeEnd < 0) return url.length
  const pathStart = url.indexOf('/', schemeEnd + 3)
  return pathStart < 0 ? 0 : url.length - pathStart
}

/**
 * The body limits of one request. The body is wrapped before routing (the proxy reads the
 * request it is handed); the route's size limit is set once the route is known: 413 up front when
 * Content-Length says so, else the stream is counted. Every body is also timed (Bun's idle timer
 * restarts on every byte, so a dribbled body would never expire). When a limit trips, the guarded
 * request's signal aborts the upstream exchange (as if the client left, so the backend is not
 * blamed) and `failure` says what to answer instead.
 */
export class BodyGuard {
  #failure: Response | undefined
  readonly #abort = new AbortController()
  #timer: Timer | undefined
  #maxBytes = 0
  readonly #length: string | null
  readonly #expectsContinue: boolean
  #reader: BodyReader | undefined
  /** The first read, started early by firstChunk() and consumed by the first pull. */
  #peeked: ReturnType<BodyReader['read']> | undefined
  /** The whole body has been read (so handed upstream). */
  #complete = false
  #onComplete: (() => void) | undefined

  private constructor(headers: Headers) {
    this.#length = headers.get('content-length')
    this.#expectsContinue = headers.has('expect')
  }

  /** The body has been read to its end (by the upstream request). */
  get complete(): boolean {
    return this.#complete
  }

  /** Call `fn` once the body has been read to its end (now if it has been). */
  whenComplete(fn: () => void): void {
    if (this.#complete) fn()
    else this.#onComplete = fn
  }

  /**
   * The upstream did not answer in time after the whole body went to it: abort its exchange
   * (through the guarded request's signal) and answer 504 instead.
   */
  upstreamTimeout(): void {
    if (this.#failure) return
    this.#failure = closingError(504, 'upstream request timeout')
    this.#stop()
    this.#abort.abort(new Error('upstream request timeout'))
  }

  /** Set once a limit tripped: the answer to give if the response has not started. */
  get failure(): Response | undefined {
    return this.#failure
  }

  /** undefined when there is no body to guard (no allocation); else a request whose body is the watched stream. */
  static wrap(req: Request, timeoutMs: number): { req: Request; guard: BodyGuard } | undefined {
    const source = req.body
    if (source === null) return undefined
    if (req.headers.get('content-length') === '0') return undefined
    const guard = new BodyGuard(req.headers)
    const body = guard.#watch(source, timeoutMs)
    const signal = AbortSignal.any([req.signal, guard.#abort.signal])
    // The proxy takes the target from the request state, never from this URL; req.url itself may
    // not even parse (Bun builds it from whatever Host the client sent).
    const guarded = new Request(GUARDED_URL, { method: req.method, headers: req.headers, body, signal, duplex: 'half' } as RequestInit)
    return { req: guarded, guard }
  }

  /** The route's size limit (0 = none): a 413 now if the announced length is over it. */
  limit(maxBytes: number): Response | undefined {
    this.#maxBytes = maxBytes
    // Bun enforces an announced length itself, so only chunked bodies need counting.
    if (maxBytes > 0 && this.#length !== null && Number(this.#length) > maxBytes) {
      this.#failure = closingError(413, 'request body too large')
      this.#stop()
      return this.#failure
    }
    return undefined
  }

  /**
   * Bun hands a chunked request to the handler as soon as its head is parsed and only errors the
   * body stream when a chunk size turns out invalid (measured): forwarding at once would show the
   * backend a request the gateway then answers 400. Waiting up to `waitMs` for the first chunk
   * catches what arrived with the head (the smuggling case) at no cost for well-formed clients.
   * Not for `Expect: 100-continue`: that client sends nothing until it hears back.
   */
  async firstChunk(waitMs: number): Promise<Response | undefined> {
    if (this.#length !== null || this.#expectsContinue || !this.#reader || this.#peeked) return undefined
    const read = this.#reader.read()
    this.#peeked = read
    let timer: Timer | undefined
    const outcome = await Promise.race([
      read.then(() => 'ok' as const, () => 'malformed' as const),
      new Promise<'waiting'>((resolve) => (timer = setTimeout(() => resolve('waiting'), waitMs))),
    ])
    clearTimeout(timer)
    return outcome === 'malformed' ? closingError(400, 'malformed request body') : undefined
  }

  #trip(status: number, message: string, reader: { cancel(reason?: unknown): Promise<void> }, controller: ReadableStreamDefaultController<Uint8Array>): void {
    if (this.#failure) return
    this.#failure = closingError(status, message)
    this.#stop()
    const err = new Error(message)
    reader.cancel(err).catch(() => {})
    try {
      controller.error(err)
    } catch {}
    this.#abort.abort(err)
  }

  #stop(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #watch(source: ReadableStream<Uint8Array>, timeoutMs: number): ReadableStream<Uint8Array> {
    const reader = source.getReader() as unknown as BodyReader
    this.#reader = reader
    let received = 0
    let armed = false
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          // Armed on the first read: a body nobody reads (a 404, a redirect) holds no timer.
          if (!armed && timeoutMs > 0 && !this.#failure) {
            armed = true
            this.#timer = setTimeout(() => this.#trip(408, 'request body timeout', reader, controller), timeoutMs)
            this.#timer.unref?.()
          }
          let chunk: Awaited<ReturnType<BodyReader['read']>>
          try {
            const peeked = this.#peeked
            this.#peeked = undefined
            chunk = await (peeked ?? reader.read())
          } catch (err) {
            this.#stop()
            throw err
          }
          if (this.#failure) return
          if (chunk.done) {
            this.#stop()
            controller.close()
            this.#complete = true
            const done = this.#onComplete
            this.#onComplete = undefined
            done?.()
            return
          }
          received += chunk.value.byteLength
          if (this.#maxBytes > 0 && received > this.#maxBytes) return this.#trip(413, 'request body too large', reader, controller)
          controller.enqueue(chunk.value)
        },
        cancel: (reason) => {
          this.#stop()
          return reader.cancel(reason)
        },
      },
      // Pass chunks through one at a time, as they are asked for: no buffering of our own.
      { highWaterMark: 0 },
    )
  }
}
