/**
 * h2c upstreams (appProtocol kubernetes.io/h2c): HTTP/2 with prior knowledge over cleartext.
 *
 * Bun's fetch cannot speak h2c (it answers HTTP2Unsupported), so these backends go through a
 * node:http2 client. `h2cFetch` has fetch's shape (URL + RequestInit → Response) so proxy.ts
 * treats both alike: same abort signal for timeouts and client disconnects, same streaming
 * bodies both ways, same error codes (ECONNREFUSED → 502, anything else → 503).
 *
 * Sessions are pooled per origin and multiplex many requests; a session that receives GOAWAY,
 * errors or closes is replaced on the next request. A request the server provably did not
 * process (REFUSED_STREAM, or beyond GOAWAY's last stream id, or a reused session that died
 * before answering) is sent once more on a fresh session when its body can be replayed, which is
 * what fetch does for a stale keep-alive connection.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type Http2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'

const {
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_NO_ERROR,
} = http2.constants

/** Streams per session before another session is opened (nghttp2's own default limit is 100). */
const MAX_STREAMS_PER_SESSION = 100
/** An idle session is closed after this long, so a quiet backend holds no connection. */
const SESSION_IDLE_MS = 60_000
/** Response body bytes buffered ahead of the client before the upstream stream is paused. */
const RESPONSE_HIGH_WATER_BYTES = 64 * 1024

/** HTTP/2 forbids connection-specific fields (RFC 9113 §8.2.2); Host becomes :authority. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings'])

/** The subset of RequestInit proxy.ts passes. */
export interface H2cInit {
  readonly method?: string
  readonly headers?: Headers
  readonly body?: ArrayBuffer | ReadableStream<Uint8Array> | null
  readonly signal?: AbortSignal | null
}

class PooledSession {
  active = 0
  /** GOAWAY received, errored or closed: no new streams. */
  usable = true
  /** Streams with a higher id were not processed by the server (from GOAWAY). */
  lastStreamId = Infinity
  /** The error that ended the session (e.g. ECONNREFUSED), reported to streams that die with it. */
  error: Error | undefined
  /** Some stream got an answer on this session: a later failure may be a stale connection. */
  answered = false

  constructor(readonly session: ClientHttp2Session) {}
}

class OriginSessions {
  readonly #sessions = new Set<PooledSession>()

  constructor(readonly origin: string) {}

  get size(): number {
    return this.#sessions.size
  }

  acquire(fresh: boolean): PooledSession {
    if (!fresh) {
      for (const pooled of this.#sessions) {
        if (pooled.usable && pooled.active < capacity(pooled.session)) return pooled
      }
    }
    return this.#open()
  }

  closeAll(): void {
    for (const pooled of this.#sessions) pooled.session.destroy()
    this.#sessions.clear()
  }

  #open(): PooledSession {
    const session = http2.connect(this.origin, { settings: { enablePush: false } })
    const pooled = new PooledSession(session)
    this.#sessions.add(pooled)
    const retire = () => {
      pooled.usable = false
      this.#sessions.delete(pooled)
    }
    session.on('goaway', (_code: number, lastStreamId: number) => {
      pooled.lastStreamId = lastStreamId
      retire()
    })
    session.on('error', (err: Error) => {
      pooled.error = err
      retire()
    })
    session.on('close', retire)
    session.setTimeout(SESSION_IDLE_MS, () => {
      if (pooled.active === 0) {
        retire()
        session.close()
      }
    })
    // A pooled idle connection must not keep the process alive.
    session.unref()
    return pooled
  }
}

const origins = new Map<string, OriginSessions>()

/** Close every pooled session (data plane stop, tests). */
export function closeH2cSessions(): void {
  for (const sessions of origins.values()) sessions.closeAll()
  origins.clear()
}

/** Open sessions to `origin`, for tests of reuse and reconnect. */
export function h2cSessionCount(origin: string): number {
  return origins.get(origin)?.size ?? 0
}

/** Send one request over h2c. Rejects like fetch: with the signal's reason when aborted, else with an error carrying a code. */
export async function h2cFetch(url: string, init: H2cInit): Promise<Response> {
  const { origin, path } = splitUrl(url)
  let sessions = origins.get(origin)
  if (!sessions) {
    sessions = new OriginSessions(origin)
    origins.set(origin, sessions)
  }
  const replayable = !(init.body instanceof ReadableStream)
  try {
    return await attempt(sessions.acquire(false), origin, path, init)
  } catch (err) {
    if (!(err instanceof NotProcessed) || !replayable || init.signal?.aborted) throw unwrap(err)
    return attempt(sessions.acquire(true), origin, path, init).catch((again) => {
      throw unwrap(again)
    })
  }
}

/** The server did not process the request: safe to send again. */
class NotProcessed extends Error {
  constructor(readonly original: Error) {
    super(original.message)
  }
}

function unwrap(err: unknown): unknown {
  return err instanceof NotProcessed ? err.original : err
}

function attempt(pooled: PooledSession, origin: string, path: string, init: H2cInit): Promise<Response> {
  const signal = init.signal ?? undefined
  if (signal?.aborted) return Promise.reject(signal.reason)
  const method = init.method ?? 'GET'
  const body = init.body ?? null
  return new Promise<Response>((resolve, reject) => {
    let stream: ClientHttp2Stream
    try {
      stream = pooled.session.request(requestHeaders(method, path, origin, init.headers), { endStream: body === null })
    } catch (err) {
      pooled.usable = false
      reject(new NotProcessed(err instanceof Error ? err : new Error(String(err))))
      return
    }
    pooled.active++
    const reusedSession = pooled.answered
    let responded = false
    const onAbort = () => stream.close(NGHTTP2_CANCEL)
    signal?.addEventListener('abort', onAbort, { once: true })

    stream.once('response', (head: IncomingHttpHeaders) => {
      responded = true
      pooled.answered = true
      const status = Number(head[':status'])
      const bodyless = method === 'HEAD' || status === 204 || status === 205 || status === 304
      if (bodyless) stream.resume()
      resolve(new Response(bodyless ? null : responseBody(stream, signal), { status, headers: responseHeaders(head) }))
    })
    stream.on('error', () => {
      // Reported through 'close' (below) or the body stream; without a listener it would throw.
    })
    stream.once('close', () => {
      pooled.active--
      signal?.removeEventListener('abort', onAbort)
      if (responded) return
      if (signal?.aborted) return reject(signal.reason)
      const code = stream.rstCode
      const cause = pooled.error ?? codedError(code === NGHTTP2_NO_ERROR ? 'ECONNRESET' : `H2_RST_${code}`, `h2c stream closed before response headers (rst ${code})`)
      const unprocessed = code === NGHTTP2_REFUSED_STREAM || (stream.id !== undefined && stream.id > pooled.lastStreamId) || (reusedSession && !pooled.usable && pooled.error === undefined)
      reject(unprocessed ? new NotProcessed(cause) : cause)
    })

    if (body instanceof ArrayBuffer) stream.end(Buffer.from(body))
    else if (body instanceof ReadableStream) void pumpBody(body, stream)
  })
}

/** Copy a request body into the h2 stream, waiting for 'drain' so a slow backend bounds memory. */
async function pumpBody(body: ReadableStream<Uint8Array>, stream: ClientHttp2Stream): Promise<void> {
  const reader = body.getReader()
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      if (stream.destroyed) return void reader.cancel().catch(() => {})
      if (!stream.write(value)) await waitForDrain(stream)
    }
    if (!stream.destroyed) stream.end()
  } catch {
    // The client's upload failed: the backend must not take a truncated body as complete.
    if (!stream.destroyed) stream.close(NGHTTP2_CANCEL)
    reader.cancel().catch(() => {})
  }
}

/** Resolves when an h2 stream (either side's) can take more, or has closed. */
export function waitForDrain(stream: Http2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}

/** The response body as a web stream; the h2 stream is paused while the client is behind. */
function responseBody(stream: ClientHttp2Stream, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let ended = false
        stream.on('data', (chunk: Buffer) => {
          controller.enqueue(chunk)
          if ((controller.desiredSize ?? 1) <= 0) stream.pause()
        })
        stream.once('end', () => {
          ended = true
          controller.close()
        })
        stream.once('close', () => {
          if (ended) return
          // A reset mid-body must reach the client as an error, not as a short but "complete" body.
          const reason = signal?.aborted ? signal.reason : codedError('ECONNRESET', `h2c stream reset mid-body (rst ${stream.rstCode})`)
          try {
            controller.error(reason)
          } catch {
            // already closed or errored
          }
        })
      },
      pull() {
        stream.resume()
      },
      cancel() {
        stream.close(NGHTTP2_CANCEL)
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: RESPONSE_HIGH_WATER_BYTES }),
  )
}

function requestHeaders(method: string, path: string, origin: string, headers: Headers | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {
    ':method': method,
    ':scheme': 'http',
    ':path': path,
    ':authority': headers?.get('host') ?? origin.slice(origin.indexOf('//') + 2),
  }
  if (!headers) return out
  for (const [name, value] of headers) {
    if (CONNECTION_SPECIFIC.has(name)) continue
    // TE is allowed in HTTP/2 only as "trailers".
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') continue
    // proxy.ts sets these empty to keep fetch from adding its defaults; node:http2 adds none.
    if (value === '' && (name === 'user-agent' || name === 'accept')) continue
    out[name] = value
  }
  return out
}

function responseHeaders(head: IncomingHttpHeaders): Headers {
  const headers = new Headers()
  for (const name in head) {
    if (name.charCodeAt(0) === 58 /* : */) continue
    const value = head[name]
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) headers.append(name, v)
    else headers.append(name, String(value))
  }
  return headers
}

function splitUrl(url: string): { origin: string; path: string } {
  const slash = url.indexOf('/', url.indexOf('://') + 3)
  return slash < 0 ? { origin: url, path: '/' } : { origin: url.slice(0, slash), path: url.slice(slash) }
}

function capacity(session: ClientHttp2Session): number {
  const advertised = session.remoteSettings?.maxConcurrentStreams
  return Math.min(MAX_STREAMS_PER_SESSION, advertised && advertised > 0 ? advertised : MAX_STREAMS_PER_SESSION)
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}
