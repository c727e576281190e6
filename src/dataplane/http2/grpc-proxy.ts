/**
 * One gRPC call (an h2 stream with content-type application/grpc*) from match to trailers:
 *   match (GRPCRoute rules are path/header rules, translate/grpc-route.ts) → the rule's chain
 *   (auth, rate limit, header modifiers: the same compiled hooks the HTTP pipeline runs) →
 *   backend pick → an h2 stream on a pooled session (h2c or TLS, upstream-sessions.ts).
 * Messages are never buffered: each side is relayed into the other (relay()), so HTTP/2 flow control on one
 * connection pauses the other (a client that stops reading stalls the backend's stream, and the
 * other way round). Trailers (grpc-status, grpc-message, metadata) are relayed as trailers.
 * grpc-timeout bounds the whole call: the gateway ends it with DEADLINE_EXCEEDED and cancels the
 * backend's stream. Every answer the gateway makes is a gRPC status (grpc-status.ts).
 */
import type { Readable, Writable } from 'node:stream'
import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { chooseBackend, type PortPlan, type RoutePlan } from '../snapshot.ts'
import { normalizeHost } from '../http/match.ts'
import { RequestState } from '../http/context.ts'
import { runRequestHooks, type ResponseHook } from '../http/chain.ts'
import { isMisdirected } from '../http/tls/misdirected.ts'
import { setUpstreamFields, stripHopByHop } from '../http/headers.ts'
import type { Verdict } from '../../policy/runtime.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import type { Logger } from '../log.ts'
import { formatGrpcTimeout, GrpcStatus, grpcStatusForHttp, literal, NO_DATE, parseGrpcTimeout, trailersOnly } from './grpc-status.ts'
import { upstreamSession, whenConnected, type UpstreamSession } from './upstream-sessions.ts'
import { recordGrpcCall } from './grpc-metrics.ts'

const { NGHTTP2_CANCEL } = http2.constants

/** Fields HTTP/2 forbids or that belong to one hop (RFC 9113 §8.2.2); te: trailers is re-added for the backend. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'te', 'trailer'])

/** What a call needs of the connection it arrived on. */
export interface GrpcCallContext {
  readonly clientIp: string
  readonly serverName: string | undefined
  readonly listenerPort: number
  readonly logger: Logger
}

/** Serve one gRPC call on `port`. Never throws: failures become a gRPC status. */
export async function proxyGrpc(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, port: PortPlan, ctx: GrpcCallContext): Promise<void> {
  const call = new GrpcCall(stream, headers, port, ctx)
  try {
    await call.run()
  } catch (err) {
    ctx.logger.error('grpc call failed', { port: ctx.listenerPort, error: err instanceof Error ? err.message : String(err) })
    call.fail(GrpcStatus.INTERNAL, 'internal error')
  }
}

class GrpcCall {
  readonly #t0 = performance.now()
  #route: RoutePlan | undefined
  #pool: RuntimePool | undefined
  #upstream: ClientHttp2Stream | undefined
  #session: UpstreamSession | undefined
  #responded = false
  #finished = false
  /** Trailers to send when the client stream ends (the backend's, or the gateway's error). */
  #trailers: OutgoingHttpHeaders | undefined
  #deadline: Timer | undefined
  #status = -1
  /** The gateway answered (a policy, no route, an upstream failure), not the backend. */
  #local = false
  #endpoint: string | undefined
  #releaseCircuit: (() => void) | undefined
  /** Stops relaying the backend's messages to the client. */
  #down: (() => void) | undefined

  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    readonly port: PortPlan,
    readonly ctx: GrpcCallContext,
  ) {
    stream.on('close', () => this.#onClientClose())
    // A client that resets its stream has cancelled the call: the error is that, nothing to report.
    stream.on('error', () => {})
  }

  async run(): Promise<void> {
    const headers = this.headers
    const rawPath = String(headers[':path'] ?? '/')
    const q = rawPath.indexOf('?')
    const path = q < 0 ? rawPath : rawPath.slice(0, q)
    const authority = String(headers[':authority'] ?? headers.host ?? '')
    const fields = new Headers()
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* : */) continue
      const value = headers[name]
      if (Array.isArray(value)) for (const v of value) fields.append(name, v)
      else if (value !== undefined) fields.set(name, value)
    }
    fields.set('host', authority)
    // RequestState reads only the fields of its request (matching, policies, upstream copy).
    const req = { headers: fields, method: 'POST' } as unknown as Request
    const state = new RequestState(req, String(headers[':method'] ?? 'POST'), path, q < 0 ? '' : rawPath.slice(q), normalizeHost(authority), this.ctx.clientIp, this.port.scheme, this.ctx.listenerPort, authority)

    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout'])
    if (timeoutMs !== undefined) {
      this.#deadline = setTimeout(() => this.#expire(), timeoutMs)
    }

    if (isMisdirected(this.port.router, this.ctx.serverName, state.host)) return this.fail(GrpcStatus.UNAVAILABLE, 'misdirected request: the TLS server name does not match the authority')
    const found = this.port.router.route(state.host, state)
    if (!found) return this.fail(GrpcStatus.UNIMPLEMENTED, `no route for ${path}`)
    const route = found.rule
    this.#route = route
    if (route.requestFilters.length > 0 && (await this.#refused(runRequestHooks(route.requestFilters, state)))) return
    const action = route.action
    if (action.kind !== 'forward') {
      const status = action.kind === 'respond' ? action.status : 500
      return this.fail(grpcStatusForHttp(status), action.kind === 'respond' ? `route answers HTTP ${status}` : 'a redirect cannot answer a gRPC call')
    }
    const choice = chooseBackend(action)
    if (!choice || !choice.pool) return this.fail(GrpcStatus.INTERNAL, 'invalid backend')
    if (choice.requestFilters.length > 0 && (await this.#refused(runRequestHooks(choice.requestFilters, state)))) return
    const pool = choice.pool as RuntimePool
    this.#pool = pool
    if (pool.members.length === 0) return this.fail(GrpcStatus.UNAVAILABLE, 'no healthy upstream')
    if (this.#finished) return
    if (pool.circuit) {
      const refusedBy = await pool.circuit.acquire(pool.limits!)
      if (refusedBy !== undefined) return this.fail(GrpcStatus.UNAVAILABLE, `upstream overloaded: ${refusedBy}`, { 'x-portico-overload': `circuit-open ${refusedBy}` })
      this.#releaseCircuit = () => pool.circuit!.release(pool.limits)
      if (this.#finished) return this.#releaseCircuitOnce()
    }
    const upstreamHeaders = this.#upstreamHeaders(state, timeoutMs)
    const responseHooks = [route.responseFilters, choice.responseFilters]

    // A backend that refuses the connection never saw the call: try each other endpoint once.
    const tried = new Set<PoolMember>()
    let member: PoolMember | undefined
    while (true) {
      member = pool.pick({ clientIp: state.clientIp, headers: state.headers, now: Date.now(), tried, avoid: member })
      if (!member || tried.has(member)) return this.fail(GrpcStatus.UNAVAILABLE, 'upstream connect error')
      const session = upstreamSession(member.origin, pool.tls)
      let error = whenConnected(session)
      if (error instanceof Promise) error = await error
      if (this.#finished) return
      if (!error) {
        this.#session = session
        break
      }
      pool.outcome(member.state, 'refused')
      this.ctx.logger.warn('grpc upstream connect failed', { endpoint: member.state.key, route: route.id, error: errorCode(error) })
      tried.add(member)
      if (tried.size >= pool.members.length) return this.fail(GrpcStatus.UNAVAILABLE, 'upstream connect error')
    }
    this.#forward(state, member, upstreamHeaders, responseHooks)
  }

  /** Run a verdict to its end: true when a policy answered (the call is then over). */
  async #refused(verdict: Verdict | Promise<Verdict>): Promise<boolean> {
    const v = verdict instanceof Promise ? await verdict : verdict
    if (!v) return this.#finished
    const extra: OutgoingHttpHeaders = {}
    for (const [name, value] of v.headers ?? []) {
      const lower = name.toLowerCase()
      if (lower !== 'content-type' && lower !== 'content-length' && !CONNECTION_SPECIFIC.has(lower)) extra[lower] = value
    }
    const body = typeof v.body === 'string' ? v.body.trim() : ''
    this.fail(grpcStatusForHttp(v.status), body || `HTTP ${v.status}`, extra)
    return true
  }

  #upstreamHeaders(state: RequestState, timeoutMs: number | undefined): OutgoingHttpHeaders {
    const fields = state.upstreamHeaders
    stripHopByHop(fields)
    setUpstreamFields(fields, state)
    const out: OutgoingHttpHeaders = {
      ':method': 'POST',
      ':scheme': this.#pool?.tls ? 'https' : 'http',
      ':authority': state.authority,
      ':path': state.path + state.query,
    }
    for (const [name, value] of fields) {
      if (CONNECTION_SPECIFIC.has(name)) continue
      // Headers joins repeated fields with ", "; gRPC metadata values are comma-safe by spec.
      out[name] = value
    }
    out.te = 'trailers'
    // The backend learns how long it has left (the gateway's own timer also runs).
    if (timeoutMs !== undefined) out['grpc-timeout'] = formatGrpcTimeout(timeoutMs - (performance.now() - this.#t0))
    return out
  }

  #forward(state: RequestState, member: PoolMember, headers: OutgoingHttpHeaders, hooks: readonly (readonly ResponseHook[])[]): void {
    const session = this.#session!
    const pool = this.#pool!
    const endpoint = member.state
    this.#endpoint = endpoint.key
    endpoint.inFlight++
    session.active++
    let counted = true
    const uncount = () => {
      if (!counted) return
      counted = false
      endpoint.inFlight--
      session.active--
    }
    let up: ClientHttp2Stream
    try {
      up = session.session.request(headers)
    } catch (err) {
      uncount()
      pool.outcome(endpoint, 'local')
      return this.fail(GrpcStatus.UNAVAILABLE, `upstream stream failed: ${errorCode(err)}`)
    }
    this.#upstream = up
    up.on('response', (head: IncomingHttpHeaders) => {
      uncount()
      const status = Number(head[':status'] ?? 0)
      pool.outcome(endpoint, status)
      if (this.#finished) return
      const out = responseHead(head)
      if (hooks[0]!.length > 0 || hooks[1]!.length > 0) applyHooks(out, hooks, state, status)
      // Trailers-Only (grpc-status in the head) ends with the head: nothing to wait for.
      const trailersOnlyAnswer = head['grpc-status'] !== undefined
      if (status !== 200 && !trailersOnlyAnswer) {
        // Not a gRPC answer (a proxy's 502, an HTTP/2 server without the service): the client gets a gRPC status.
        up.close(NGHTTP2_CANCEL)
        return this.fail(grpcStatusForHttp(status), `upstream answered HTTP ${status}`)
      }
      if (trailersOnlyAnswer) {
        // One HEADERS frame with END_STREAM, as the backend sent it: gRPC clients read a status
        // from a head only when it ends the stream.
        this.#status = Number(head['grpc-status'])
        this.#responded = true
        up.resume()
        try {
          this.stream.respond(literal(out), { endStream: true, ...NO_DATE })
        } catch {
          // the client reset the stream meanwhile
        }
        return
      }
      this.#respond(out, true)
      this.#down = relay(up, this.stream)
    })
    up.on('trailers', (trailers: IncomingHttpHeaders) => {
      const out: OutgoingHttpHeaders = {}
      for (const name in trailers) if (name.charCodeAt(0) !== 58) out[name] = trailers[name]
      if (out['grpc-status'] === undefined) out['grpc-status'] = String(GrpcStatus.UNKNOWN)
      this.#status = Number(out['grpc-status'])
      this.#trailers = out
    })
    up.on('error', (err: Error) => {
      if (this.#finished) return
      this.ctx.logger.debug('grpc upstream stream failed', { endpoint: endpoint.key, error: errorCode(err) })
    })
    up.on('close', () => {
      uncount()
      if (this.#finished) return
      if (!this.#responded) {
        pool.outcome(endpoint, 'local')
        return this.fail(GrpcStatus.UNAVAILABLE, 'upstream reset before response headers')
      }
      // The backend's stream ended: either with its trailers (the relay ends the client stream),
      // or reset / cut mid-call, which the client must hear as UNAVAILABLE, not as success.
      if (up.rstCode !== undefined && up.rstCode !== 0 && this.#trailers === undefined) {
        this.#down?.()
        this.#trailers = { 'grpc-status': String(GrpcStatus.UNAVAILABLE), 'grpc-message': 'upstream stream reset' }
        this.#status = GrpcStatus.UNAVAILABLE
        if (!this.stream.writableEnded) this.stream.end()
      }
    })
    // Request messages flow as the backend's window allows; the client's half-close follows.
    relay(this.stream, up)
    if (state.mirrors) for (const target of state.mirrors) mirrorCall(this.stream, state, target.pool, headers, this.ctx.logger)
  }

  #respond(head: OutgoingHttpHeaders, waitForTrailers: boolean): void {
    this.#responded = true
    const stream = this.stream
    if (stream.destroyed || stream.closed) return
    if (waitForTrailers) {
      stream.once('wantTrailers', () => {
        const trailers = this.#trailers ?? { 'grpc-status': String(GrpcStatus.UNKNOWN), 'grpc-message': 'upstream ended without trailers' }
        if (this.#trailers === undefined) this.#status = GrpcStatus.UNKNOWN
        try {
          stream.sendTrailers(literal(trailers))
        } catch {
          // The client reset the stream meanwhile.
        }
      })
    }
    stream.respond(literal(head), { waitForTrailers, ...NO_DATE })
  }

  /** Answer with a gRPC status: Trailers-Only before the response head, trailers after it. */
  fail(code: number, message: string, extra?: OutgoingHttpHeaders): void {
    if (this.#finished) return
    this.#status = code
    this.#local = true
    const stream = this.stream
    if (this.#upstream && !this.#upstream.closed) {
      this.#down?.()
      this.#upstream.close(NGHTTP2_CANCEL)
    }
    if (stream.destroyed || stream.closed) return this.#finish()
    if (!this.#responded) {
      this.#responded = true
      if (!stream.headersSent) {
        try {
          stream.respond(trailersOnly(code, message, extra), { endStream: true, ...NO_DATE })
        } catch {
          // closed meanwhile
        }
      }
      // Whatever the client still sends is not wanted.
      stream.resume()
    } else {
      this.#trailers = { 'grpc-status': String(code), 'grpc-message': message }
      if (!stream.writableEnded) stream.end()
    }
    this.#finish()
  }

  #expire(): void {
    this.#deadline = undefined
    this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded at the gateway')
  }

  #onClientClose(): void {
    // The client cancelled (or the call ended): the backend's stream is not needed any more.
    const up = this.#upstream
    if (up && !up.closed) up.close(NGHTTP2_CANCEL)
    if (this.#status < 0) this.#status = GrpcStatus.CANCELLED
    this.#finish()
  }

  #releaseCircuitOnce(): void {
    const release = this.#releaseCircuit
    this.#releaseCircuit = undefined
    release?.()
  }

  #finish(): void {
    if (this.#finished) return
    this.#finished = true
    if (this.#deadline) clearTimeout(this.#deadline)
    this.#releaseCircuitOnce()
    // Recorded when the stream closes, so streaming calls count their whole duration.
    const record = () =>
      recordGrpcCall(this.port, this.#route, this.#pool, this.headers, this.#status, performance.now() - this.#t0, {
        local: this.#local,
        clientIp: this.ctx.clientIp,
        endpoint: this.#endpoint,
        startMs: Date.now() - (performance.now() - this.#t0),
      })
    if (this.stream.closed) record()
    else this.stream.once('close', record)
  }
}

/** A mirror may lag this far behind the call before its copy is dropped (it never slows the call). */
const MIRROR_MAX_BUFFERED_BYTES = 1024 * 1024

/**
 * RequestMirror on a GRPCRoute: the same call, fire and forget, to a member of the mirror pool.
 * It sees the request messages as they stream; its answer is read and dropped. A mirror that
 * cannot keep up (over MIRROR_MAX_BUFFERED_BYTES queued) is cancelled rather than buffered.
 */
function mirrorCall(client: ServerHttp2Stream, state: RequestState, pool: RuntimePool, headers: OutgoingHttpHeaders, logger: Logger): void {
  const member = pool.pick({ clientIp: state.clientIp, headers: state.headers, now: Date.now() })
  if (!member) return
  let copy: ClientHttp2Stream
  try {
    copy = upstreamSession(member.origin, pool.tls).session.request({ ...headers, ':scheme': pool.tls ? 'https' : 'http' })
  } catch (err) {
    logger.debug('grpc mirror failed', { pool: pool.key, error: errorCode(err) })
    return
  }
  copy.on('error', (err: Error) => logger.debug('grpc mirror failed', { pool: pool.key, error: errorCode(err) }))
  copy.resume()
  const onData = (chunk: Buffer) => {
    if (copy.closed) return
    if (copy.writableLength > MIRROR_MAX_BUFFERED_BYTES) return void copy.close(NGHTTP2_CANCEL)
    copy.write(chunk)
  }
  const onEnd = () => {
    if (!copy.closed && !copy.writableEnded) copy.end()
  }
  client.on('data', onData)
  client.once('end', onEnd)
  client.once('close', () => {
    client.off('data', onData)
    // a call that ended without its half-close (cancelled, failed) cancels its copy too
    if (!copy.writableEnded && !copy.closed) copy.close(NGHTTP2_CANCEL)
  })
}

/**
 * Relay `from`'s data into `to` with backpressure (a full `to` pauses `from` until 'drain'), and
 * its end (for the client stream, end() then asks for trailers). Lighter than pipe(), which adds
 * half a dozen listeners per stream. Returns a function that stops relaying.
 */
function relay(from: Readable, to: Writable): () => void {
  let waiting = false
  const resume = () => {
    waiting = false
    from.resume()
  }
  const onData = (chunk: Buffer) => {
    if (!to.write(chunk) && !waiting) {
      waiting = true
      from.pause()
      to.once('drain', resume)
    }
  }
  const onEnd = () => {
    if (!to.writableEnded && !to.destroyed) to.end()
  }
  from.on('data', onData)
  from.once('end', onEnd)
  return () => {
    from.off('data', onData)
    from.off('end', onEnd)
    if (waiting) to.off('drain', resume)
  }
}

/** The backend's head for the client: pseudo-headers and connection-specific fields dropped. */
function responseHead(head: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':status': Number(head[':status'] ?? 200) }
  for (const name in head) {
    if (name.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(name) || name === 'date') continue
    out[name] = head[name]
  }
  return out
}

/** ResponseHeaderModifier and policy response hooks edit a Headers view of the head. */
function applyHooks(out: OutgoingHttpHeaders, hooks: readonly (readonly ResponseHook[])[], state: RequestState, status: number): void {
  const fields = new Headers()
  for (const name in out) {
    if (name.charCodeAt(0) === 58) continue
    const value = out[name]
    if (Array.isArray(value)) for (const v of value) fields.append(name, String(v))
    else if (value !== undefined) fields.set(name, String(value))
    delete out[name]
  }
  for (const list of hooks) for (const hook of list) hook(state, fields, status)
  for (const [name, value] of fields) if (!CONNECTION_SPECIFIC.has(name)) out[name] = value
}

function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err) return String((err as { code: unknown }).code)
  return err instanceof Error ? err.message : String(err)
}
