/**
 * One client connection of the HTTP front: parse each request head strictly, then either
 * forward it straight to a pooled upstream link (rules the snapshot marked `direct`: plain
 * forwarding, the common case) or hand it unchanged to the connection's own link to the inner
 * Bun.serve, which runs the full pipeline (filters, redirects, retries, mirrors, CORS, h2c and
 * TLS backends, WebSocket upgrades). Either way the response is framed here, so requests are
 * answered strictly in order, one at a time: pipelined requests wait in `#buffered` (nginx does
 * the same), which Bun.serve cannot do with async handlers.
 *
 * Bytes are moved, not re-encoded: the request head is rebuilt only on the direct path (Host,
 * X-Forwarded-*, Forwarded, X-Request-Id, hop-by-hop removed), bodies pass through with their
 * framing, and a response head is rewritten only when it has hop-by-hop fields or the
 * connection must close. Backpressure runs both ways: whoever cannot write pauses the reader.
 */
import type { Socket } from 'bun'
import { chooseBackend, stillRouted, type PortPlan, type RoutePlan } from '../../snapshot.ts'
import { normalizeHost } from '../match.ts'
import { isMisdirected } from '../tls/misdirected.ts'
import { DROPPED_REQUEST_FIELDS, forwardedElement, forwardingLines, HOP_BY_HOP, nominatedFields, requestIdLine } from '../headers.ts'
import { isReplayable, isWebSocketUpgrade, STANDARD_METHODS, WS_HANDSHAKE_TIMEOUT_MS } from '../constants.ts'
import { runRequestHooks } from '../chain.ts'
import type { LocalReply } from '../../../policy/runtime.ts'
import { HeadRequest } from './head-request.ts'
import { ChunkedDecodeError, ChunkedDecoder } from '../../upstream/http1/chunked.ts'
import { hasNoBody, HeadParseError, MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from '../../upstream/http1/response-head.ts'
import type { EndpointState } from '../../upstream/registry.ts'
import type { RuntimePool } from '../../upstream/pool.ts'
import type { PoolMember } from '../../upstream/policies/picker.ts'
import { incompleteHeadError, parseRequestHead, RequestHeadError, type RequestHead } from './request-head.ts'
import { blankLineAt, latin1 } from '../wire-text.ts'
import { openLink, wireBytes, type Link, type LinkOwner } from './links.ts'
import type { FrontContext } from './context.ts'
import { closeFrame, FrameTracker } from './ws-frames.ts'
import { editResponseHead } from '../../../policy/client-traffic/response-headers.ts'
import { HeldBody, HoldResult } from './request-buffer.ts'
import { overloadCounters } from '../../overload/metrics.ts'
import { methodIndex, reasonForStatus, reasonIndex, requestMetrics, LOCAL_REASONS, type LabelSet } from '../../../telemetry/request-metrics.ts'
import { logExchange, logStream, telemetry } from '../../../telemetry/observe.ts'
import { traceparentOf, type SpanContext } from '../../../telemetry/tracing.ts'

const enum Phase {
  /** Waiting for (or reading) a request head. */
  Idle,
  /** A head is parsed; its body is being received whole before the backend is called (request-buffer.ts). */
  Buffering,
  /** A request is being forwarded and its response relayed. */
  Exchange,
  /** After a 101 or an h2c preface: bytes both ways, no parsing. */
  Tunnel,
  Closed,
}

const enum Body {
  None,
  Length,
  Chunked,
  /** Response only: ends when the upstream closes. */
  UntilClose,
}

/**
 * A replayable request is kept for a replay up to this many bytes (head and body as sent); a
 * bigger one has streamed past what we hold and is never sent twice. The default request buffer
 * size, so every body the front holds whole stays replayable.
 */
const REPLAY_MAX_BYTES = 64 * 1024 + 16 * 1024

/** Pipelined bytes buffered while a request is served; beyond this the client is not read. */
const MAX_BUFFERED_BYTES = 64 * 1024
const H2_PREFACE = 'PRI * HTTP/2.0\r\n'
const NO_OP = () => {}
const CRLF = Buffer.from('\r\n')
const LAST_CHUNK = Buffer.from('0\r\n\r\n')
/** Payload bytes of the request chunks decoded last (a module-level counter: no closure per request). */
let decodedBytes = 0
const COUNT_PAYLOAD = (slice: Uint8Array) => {
  decodedBytes += slice.byteLength
}

const SHED_REPLY: LocalReply = { status: 503, headers: [['retry-after', '1']], body: 'overloaded\n' }

const REASONS: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  421: 'Misdirected Request',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

/**
 * Everything one exchange needs, from its request head to the end of its response (or of the
 * tunnel it became). Made when a head arrives and dropped when the exchange ends, so an idle
 * keep-alive connection holds only ClientConnection's few fields (bench/connections.ts).
 */
class Exchange {
  /** Frame boundaries of a direct WebSocket tunnel, each way; undefined for other tunnels. */
  toBackend: FrameTracker | undefined = undefined
  toClient: FrameTracker | undefined = undefined
  /** The rule a direct exchange or tunnel was routed by (route removal closes its tunnel). */
  ruleId = ''
  /** The route's stream idle timeout (0: none): a session without data frames that long is closed. */
  routeIdleMs = 0
  wsIdleMs = 0
  wsLastData = 0
  /** The gateway is closing the session: a close frame goes each way at the next frame boundary. */
  wsClose: { readonly code: number; readonly reason: string; toClientSent: boolean; toBackendSent: boolean } | undefined = undefined
  link: Link | undefined = undefined
  /**
   * The direct path awaits a policy verdict (a promise from the chain): nothing goes upstream yet,
   * client bytes (body, pipelined requests) are only buffered. The wait's number while waiting,
   * else 0: a verdict that comes back for an exchange that ended meanwhile is dropped.
   */
  waiting = 0
  /** Withdraws a direct request from its circuit's queue (#awaitSlot). */
  slotAbort: AbortController | undefined = undefined
  direct = false
  member: EndpointState | undefined = undefined
  /** The pool the direct exchange's endpoint came from (passive health, circuit, refused retries). */
  pool: RuntimePool | undefined = undefined
  /** The pool whose circuit admitted the exchange (released when it ends). */
  admitted: RuntimePool | undefined = undefined
  /** Endpoints that refused this exchange's connection; undefined until one did. */
  tried: Set<PoolMember> | undefined = undefined
  poolMember: PoolMember | undefined = undefined
  pickHead: RequestHead | undefined = undefined
  pickIp = ''
  method = ''
  reqHttp10 = false
  /** The upstream head, held until the body bytes that came with it are validated. */
  pendingHead: string | Uint8Array | undefined = undefined
  upgrade = false
  /** The request head as sent to the inner server, kept for one replay when its link was closed under us. */
  innerHead: Uint8Array | undefined = undefined
  closeAfter = false
  upstreamHead: string | Uint8Array = ''
  /**
   * The direct request may be sent again if a pooled link closes before answering (method or
   * Idempotency-Key) and all of it written so far is kept (no more than REPLAY_MAX_BYTES).
   */
  replayable = false
  /** What was written upstream, in order: the first write (usually the whole request), then the rest. */
  replayFirst: string | Uint8Array | undefined = undefined
  replayRest: (string | Uint8Array)[] | undefined = undefined
  replayBytes = 0
  retried = false
  reqBody = Body.None
  reqRemaining = 0
  reqChunks: ChunkedDecoder | undefined = undefined
  reqDone = true
  reqBytes = 0
  reqLimit = 0
  respStarted = false
  respHead: Uint8Array | undefined = undefined
  respBody = Body.None
  respRemaining = 0
  respChunks: ChunkedDecoder | undefined = undefined
  /** The route is gone: end the chunked body at the next chunk boundary. */
  endAtChunk = false
  respDone = false
  linkReusable = false
  headDeadline = Infinity
  /** The direct exchange's wait for response headers, counted again once its body has gone upstream. */
  respTimeoutMs = 0
  bodyDeadline = Infinity
  streamIdleMs = 0

  // Telemetry of the exchange (src/telemetry): recorded at its end by #observe.
  /** performance.now() at the request head; 0 when no exchange of ours is being timed. */
  t0 = 0
  /** performance.now() when the upstream head went out (direct path), else 0. */
  tUp = 0
  status = 0
  bytesOut = 0
  /** Index in LOCAL_REASONS when the front answered itself, else 0. */
  localReason = 0
  obsHead: RequestHead | undefined = undefined
  obsPort: PortPlan | undefined = undefined
  obsRule: RoutePlan | undefined = undefined
  /** The label set the exchange was counted under (a WebSocket session's end counts under its handshake's). */
  labels: LabelSet | undefined = undefined
  requestId: string | undefined = undefined
  span: SpanContext | undefined = undefined
  /** The client's traceparent is replaced by ours (tracing on). */
  dropTraceparent = false
  wsStart = 0
  wsBytesIn = 0
  /** The request whose body is being received whole (Phase.Buffering). */
  held: HeldBody | undefined = undefined
  heldDeadline = Infinity
}

/** Numbers the waits for verdicts and circuit slots (one counter for all connections: no field each). */
let waitSeq = 0

/**
 * The last label set resolved (telemetry): keep-alive clients repeat a route, and label sets
 * depend on port plan, rule and pool only, so one entry per worker serves every connection.
 */
let lastSet: LabelSet | undefined
let lastSetRule: RoutePlan | undefined
let lastSetPool: RuntimePool | undefined
let lastSetPort: PortPlan | undefined

/**
 * The forwarding lines of the last (client address, Host, scheme) seen: built once while one
 * client (or clients behind one proxy) repeats a Host, without a cache field per connection.
 */
const forwarding = { ip: '', host: '', scheme: '', element: '', lines: '' }

export class ClientConnection implements LinkOwner {
  readonly clientIp: string
  /** The peer address this connection holds a gate slot for (overload/connection-gate.ts), until released. */
  admitted: string | undefined
  #phase = Phase.Idle
  /** Client bytes not consumed yet: a partial head, or pipelined requests. */
  #buffered: Uint8Array | undefined
  /** Requests served on this connection (the first head gets the header timeout, later ones the keep-alive one). */
  #served = 0
  /** Clock ms of the last byte either way (idle and stream-idle timeouts). */
  #lastActivity: number
  /** Clock ms at which the current head started arriving (header-read deadline). */
  #headStarted = 0
  /** Writes the client socket did not take yet; undefined when there are none (most of the time). */
  #clientQueue: (string | Uint8Array)[] | undefined
  #closeAfterFlush = false
  /** Why the client socket is paused: the link is backlogged, or too many pipelined bytes wait. */
  #pausedForLink = false
  #pausedForBuffer = false
  /** The client half-closed: finish what it sent, then close. */
  #clientEnded = false
  /** The next pipelined request waits until the client has taken the previous answer. */
  #serveOnDrain = false
  /** This connection's link to the inner Bun.serve, opened on first need and kept. */
  #inner: Link | undefined
  #innerPort = 0
  /** The exchange in progress (or tunnel, or body being held); undefined while idle. */
  #x: Exchange | undefined

  constructor(
    readonly socket: Socket<ClientConnection>,
    readonly ctx: FrontContext,
    /** The client's address when it is not the socket's peer (a PROXY protocol header said so). */
    clientIp?: string,
    /** HTTPS: the SNI of the ClientHello (a Host that picks another listener gets 421). */
    readonly serverName?: string,
    /** HTTPS with frontend mTLS (AllowValidOnly): a failed client-certificate check closes the connection. */
    readonly requireClientCert = false,
  ) {
    this.clientIp = clientIp ?? socket.remoteAddress
    this.#lastActivity = ctx.clock.now
  }

  // ---- client socket events ----

  onData(data: Uint8Array): void {
    // Closing after an answer that ended the connection: what follows is never read as requests.
    if (this.#closeAfterFlush) return
    this.#lastActivity = this.ctx.clock.now
    switch (this.#phase) {
      case Phase.Tunnel: {
        const x = this.#x!
        const frames = x.toBackend
        if (frames && x.wsClose) return this.#relayUntilClose(data, frames, false)
        if (frames) {
          frames.feed(data)
          x.wsBytesIn += data.byteLength
        }
        if (!x.link!.write(data)) this.#pauseForLink()
        return
      }
      case Phase.Exchange: {
        const x = this.#x!
        if (x.waiting !== 0) this.#stash(data)
        else if (!x.reqDone) {
          const used = this.#feedRequestBody(data, 0)
          if (used < data.byteLength && this.#phase === Phase.Exchange) this.#stash(data.subarray(used))
        } else this.#stash(data)
        return
      }
      case Phase.Idle:
        this.#stash(data)
        // Still waiting for the client to take the last answer: no new exchange yet.
        if (!this.#serveOnDrain) this.#serveBuffered()
        return
      case Phase.Buffering:
        return this.#holdMore(data)
    }
  }

  onDrain(): void {
    this.#lastActivity = this.ctx.clock.now
    const queue = this.#clientQueue
    if (queue !== undefined) {
      while (queue.length > 0) {
        const next = queue.shift()!
        if (!this.#writeNow(next)) {
          queue.unshift(queue.pop()!)
          return
        }
      }
      this.#clientQueue = undefined
    }
    if (this.#closeAfterFlush) return this.#endClient()
    this.#x?.link?.resume()
    if (this.#serveOnDrain) {
      this.#serveOnDrain = false
      this.#serveNext()
    }
  }

  /** The client half-closed (FIN): answer what it sent, then close. */
  onEnd(): void {
    this.#clientEnded = true
    // Complete requests wait for the client to read: they are served as it drains, then we close.
    if (this.#phase === Phase.Idle && this.#serveOnDrain) return
    if (this.#phase === Phase.Idle) return this.#buffered ? this.#reject(new RequestHeadError(400, 'incomplete request')) : this.#endClient()
    if (this.#phase === Phase.Buffering) return this.#reject(new RequestHeadError(400, 'incomplete request body'))
    if (this.#phase === Phase.Tunnel) this.#x!.link?.socket?.shutdown()
    // A body cut short can never complete: give up on the exchange now.
    // (While a verdict is awaited the body may be buffered whole: checked once it is fed.)
    else if (this.#phase === Phase.Exchange && !this.#x!.reqDone && this.#x!.waiting === 0) this.#failExchange(400, 'incomplete request body')
    // Otherwise #finish serves what was pipelined before the FIN, then closes.
  }

  onClose(): void {
    if (this.#phase === Phase.Closed) return
    const wasExchange = this.#phase === Phase.Exchange || this.#phase === Phase.Tunnel
    this.#releaseHeld()
    this.#phase = Phase.Closed
    this.ctx.connections.delete(this)
    if (wasExchange) this.#abandonExchange()
    this.#closeInner()
  }

  // ---- requests ----

  #stash(data: Uint8Array): void {
    const prev = this.#buffered
    this.#buffered = prev ? Buffer.concat([prev, data]) : data
    if ((this.#phase !== Phase.Idle || this.#serveOnDrain) && this.#buffered.byteLength > MAX_BUFFERED_BYTES && !this.#pausedForBuffer) {
      this.#pausedForBuffer = true
      this.socket.pause()
    }
  }

  /** Start every complete request waiting in the buffer, one at a time. */
  #serveBuffered(): void {
    while (this.#phase === Phase.Idle && this.#buffered && !this.#closeAfterFlush) {
      let buf = this.#buffered
      // RFC 9112 §2.2: ignore empty lines before a request line.
      let skip = 0
      while (skip + 1 < buf.byteLength && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2
      if (skip > 0) {
        buf = buf.subarray(skip)
        this.#buffered = buf.byteLength > 0 ? buf : undefined
        if (!this.#buffered) return
      }
      // Deadlines start from the exact time (the sweep's coarse clock could make them fire early).
      if (this.#headStarted === 0) this.#headStarted = Date.now()
      // h2c with prior knowledge: the whole connection goes to the h2 server (#startTunnel).
      if (this.#served === 0) {
        const start = latin1(buf, 0, Math.min(buf.byteLength, H2_PREFACE.length))
        if (H2_PREFACE.startsWith(start)) {
          if (start.length < H2_PREFACE.length) return
          return this.#startTunnel()
        }
      }
      // Only the head is decoded: body bytes that came along stay bytes.
      const window = this.ctx.limits.maxHeaderBytes + this.ctx.limits.maxRequestTargetBytes + 1024
      const blank = blankLineAt(buf, 0, window)
      if (blank < 0) {
        const tooBig = incompleteHeadError(latin1(buf, 0, Math.min(buf.byteLength, window)), this.ctx.limits)
        if (tooBig) this.#reject(tooBig)
        return
      }
      const head = parseRequestHead(latin1(buf, 0, blank + 4), blank, this.ctx.limits)
      if (head instanceof RequestHeadError) return this.#reject(head)
      this.#buffered = head.headBytes < buf.byteLength ? buf.subarray(head.headBytes) : undefined
      this.#headStarted = 0
      if (this.#hold(head, buf)) return
      this.#start(head, buf)
    }
  }

  // ---- request buffering (request-buffer.ts) ----

  /** Receive this request's body whole before starting it, when it qualifies; true when held (or refused). */
  #hold(head: RequestHead, buf: Uint8Array): boolean {
    if (!head.chunked && head.contentLength <= 0) return false
    const ctx = this.ctx
    const limits = ctx.limits
    const port = ctx.active.current?.ports.get(ctx.irPort)
    // The rule decides the limits (matched again when the exchange starts: only requests with a body pay twice).
    const rule = port && head.path !== '' ? port.router.match(normalizeHost(head.host), head) : undefined
    const held = HeldBody.start(head, buf.subarray(0, head.headBytes), this.#buffered, rule?.requestBufferBytes, limits.requestBufferBytes, limits.requestBufferTotalBytes, rule?.ir.maxBodyBytes ?? limits.maxBodyBytes, ctx.gate.gauges)
    if (held === undefined) return false
    if (held === HoldResult.TooLarge) {
      this.#reject(new RequestHeadError(413, 'request body too large'))
      return true
    }
    const x = (this.#x = new Exchange())
    x.held = held
    this.#buffered = undefined
    this.#phase = Phase.Buffering
    x.heldDeadline = limits.bodyTimeoutMs > 0 ? Date.now() + limits.bodyTimeoutMs : Infinity
    return true
  }

  #holdMore(data: Uint8Array): void {
    const result = this.#x!.held!.add(data)
    if (result === HoldResult.More) return
    if (result === HoldResult.TooLarge) {
      this.#releaseHeld()
      return this.#reject(new RequestHeadError(413, 'request body too large'))
    }
    // Complete, or too much to hold: the exchange starts with what is here (the rest streams).
    const held = this.#x!.held!
    this.#x = undefined
    this.#buffered = held.take()
    this.#phase = Phase.Idle
    // (An exchange that ends at once serves what was pipelined behind it from #finish.)
    this.#start(held.head, held.headBytes)
  }

  #releaseHeld(): void {
    const held = this.#x?.held
    if (held === undefined) return
    this.#x!.held = undefined
    held.release()
  }

  /** `buf` starts with the head's bytes (the inner path writes them unchanged). */
  #start(head: RequestHead, buf: Uint8Array): void {
    const ctx = this.ctx
    this.#phase = Phase.Exchange
    this.#served++
    ctx.inFlight++
    // A fresh exchange: every other field starts at its default (Exchange).
    const x = (this.#x = new Exchange())
    x.method = head.method
    x.t0 = performance.now()
    x.obsHead = head
    x.reqHttp10 = head.http10
    x.upgrade = head.upgrade
    x.closeAfter = head.close || ctx.draining
    x.streamIdleMs = ctx.limits.streamIdleSeconds * 1000
    if (head.chunked) {
      x.reqBody = Body.Chunked
      x.reqChunks = new ChunkedDecoder(true)
    } else if (head.contentLength > 0) {
      x.reqBody = Body.Length
      x.reqRemaining = head.contentLength
    }
    x.reqDone = x.reqBody === Body.None
    if (!x.reqDone && ctx.limits.bodyTimeoutMs > 0) x.bodyDeadline = Date.now() + ctx.limits.bodyTimeoutMs

    // Overload: a cheap answer instead of queueing without bound.
    const max = ctx.limits.maxConcurrentRequests
    if (max > 0 && ctx.inFlight > max) return this.#respondLocal(503, 'overloaded', true)
    if (ctx.shedder.overloaded) return this.#shed()
    const port = ctx.active.current?.ports.get(ctx.irPort)
    x.obsPort = port
    // The port left the plan while this connection drains: nothing routes here any more.
    if (!port) return this.#respondLocal(404, 'no route', true)

    // The same matcher the pipeline uses; the head is its own MatchInput.
    const host = normalizeHost(head.host)
    // HTTPS: the SNI chose a listener (certificate, client validation); a Host of another one is refused.
    if (this.serverName !== undefined && isMisdirected(port.router, this.serverName, host)) return this.#respondLocal(421, 'misdirected request', true)
    const rule = head.path !== '' ? port.router.match(host, head) : undefined
    // Kept for both paths: a configuration that removes the rule ends this exchange's stream.
    x.ruleId = rule?.id ?? ''
    const webSocket = head.upgrade && isWebSocketUpgrade(head.method, head.get('upgrade'))
    // Upgrades other than WebSocket (h2c) and everything directPool declines take the pipeline.
    const pool = rule && !head.http10 && !head.expect && webSocket === head.upgrade ? directPool(rule, webSocket) : undefined
    if (pool) this.#startDirect(head, rule!, pool, webSocket, host, buf)
    else this.#startInner(innerHead(head, buf))
    this.#feedBuffered()
  }

  /** Body bytes that arrived with the head (or while a verdict was awaited) go to the link. */
  #feedBuffered(): void {
    if (this.#phase === Phase.Exchange && !this.#x!.reqDone && this.#buffered && this.#x!.waiting === 0) {
      const body = this.#buffered
      this.#buffered = undefined
      const used = this.#feedRequestBody(body, 0)
      if (used < body.byteLength && this.#phase === Phase.Exchange) this.#stash(body.subarray(used))
    }
  }

  #startDirect(head: RequestHead, rule: RoutePlan, pool: RuntimePool, webSocket: boolean, host: string, buf: Uint8Array): void {
    const ctx = this.ctx
    let limit = rule.ir.maxBodyBytes ?? ctx.limits.maxBodyBytes
    // A requestBuffer policy's limit bounds the body even when it streamed (the worker's buffers were full).
    const buffered = rule.requestBufferBytes
    if (buffered !== undefined && (limit === 0 || buffered < limit)) limit = buffered
    if (limit > 0 && head.contentLength > limit) return this.#respondLocal(413, 'request body too large', true)
    this.#x!.reqLimit = limit
    this.#x!.obsRule = rule
    // The rule's chain is head-only here (RoutePlan.direct): run it on the head, once.
    let view: HeadRequest | undefined
    if (rule.requestFilters.length > 0) {
      view = new HeadRequest(head, this.clientIp, host)
      let verdict
      try {
        verdict = runRequestHooks(rule.requestFilters, view)
      } catch (err) {
        return this.#policyFailed(err)
      }
      // An asynchronous verdict (a global rate limit, a new JWT): awaited here, then forwarded.
      if (verdict instanceof Promise) return this.#awaitVerdict(verdict, head, rule, pool, webSocket, view, buf)
      if (verdict) return this.#replyLocal(verdict)
    }
    this.#forwardDirect(head, rule, pool, webSocket, view, buf)
  }

  /**
   * Wait for a policy's verdict without reading on: what the client sends meanwhile is buffered
   * (#stash pauses it beyond MAX_BUFFERED_BYTES), pipelined requests stay behind this one. The
   * request keeps the plan it started with (rule, pool, chain) whatever snapshot arrives
   * meanwhile; the wait is bounded by the route's request timeout (sweep); a client that goes
   * away abandons it (no upstream request).
   */
  #awaitVerdict(verdict: Promise<LocalReply | undefined>, head: RequestHead, rule: RoutePlan, pool: RuntimePool, webSocket: boolean, view: HeadRequest, buf: Uint8Array): void {
    const waiting = ++waitSeq
    this.#x!.waiting = waiting
    const timeout = this.#requestTimeout(rule, webSocket)
    const bound = timeout > 0 ? timeout : this.ctx.limits.headerTimeoutMs
    this.#x!.headDeadline = bound > 0 ? Date.now() + bound : Infinity
    verdict.then(
      (reply) => {
        if (this.#x?.waiting !== waiting) return
        this.#x!.waiting = 0
        try {
          if (reply) return this.#replyLocal(reply)
          this.#forwardDirect(head, rule, pool, webSocket, view, buf)
          this.#afterWait()
        } catch (err) {
          this.onFailure(err)
        }
      },
      (err: unknown) => {
        if (this.#x?.waiting !== waiting) return
        this.#x!.waiting = 0
        try {
          this.#policyFailed(err)
        } catch (e) {
          this.onFailure(e)
        }
      },
    )
  }

  /** The exchange goes on after a verdict: the body buffered meanwhile follows the head, the client is read again. */
  #afterWait(): void {
    if (this.#phase !== Phase.Exchange) return
    this.#feedBuffered()
    if (this.#phase !== Phase.Exchange) return
    // The client half-closed while we waited, before its body was complete: it never will be.
    if (!this.#x!.reqDone && this.#clientEnded) return this.#failExchange(400, 'incomplete request body')
    if (this.#pausedForBuffer && !(this.#buffered && this.#buffered.byteLength > MAX_BUFFERED_BYTES)) {
      this.#pausedForBuffer = false
      if (!this.#pausedForLink) this.socket.resume()
    }
  }

  /** A policy hook threw or its promise rejected: 500, as the pipeline answers it. */
  #policyFailed(err: unknown): void {
    this.ctx.logger.error('request failed', { port: this.ctx.irPort, route: this.#x!.ruleId, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
    this.#respondLocal(500, 'internal error', false)
  }

  #requestTimeout(rule: RoutePlan, webSocket: boolean): number {
    return rule.timeoutDisabled ? 0 : (rule.requestTimeoutMs ?? rule.backendTimeoutMs ?? (webSocket ? WS_HANDSHAKE_TIMEOUT_MS : this.ctx.limits.upstreamTimeoutMs))
  }

  /**
   * Queue for a circuit slot on the direct path (as the pipeline's proxy would), the same way a
   * verdict is awaited: bounded by the request timeout, withdrawn when the exchange ends first.
   */
  #awaitSlot(head: RequestHead, rule: RoutePlan, pool: RuntimePool, webSocket: boolean, view: HeadRequest): void {
    const circuit = pool.circuit!
    const waiting = ++waitSeq
    this.#x!.waiting = waiting
    const abort = (this.#x!.slotAbort = new AbortController())
    if (this.#x!.headDeadline === Infinity) {
      const timeout = this.#requestTimeout(rule, webSocket)
      const bound = timeout > 0 ? timeout : this.ctx.limits.headerTimeoutMs
      if (bound > 0) this.#x!.headDeadline = Date.now() + bound
    }
    void circuit.acquire(pool.limits!, abort.signal).then((refusedBy) => {
      if (this.#x?.waiting !== waiting) {
        // Admitted for an exchange that is over: the slot goes back.
        if (refusedBy === undefined) circuit.release(pool.limits)
        return
      }
      this.#x!.waiting = 0
      this.#x!.slotAbort = undefined
      try {
        if (refusedBy !== undefined) return this.#replyLocal(overloadReply(refusedBy))
        this.#x!.admitted = pool
        this.#sendDirect(head, rule, pool, webSocket, view)
        this.#afterWait()
      } catch (err) {
        this.onFailure(err)
      }
    })
  }

  /** The exchange ended: a verdict or a circuit slot still awaited is dropped when it comes. */
  #stopWaiting(): void {
    this.#x!.waiting = 0
    const abort = this.#x!.slotAbort
    if (abort) {
      this.#x!.slotAbort = undefined
      abort.abort()
    }
  }

  /** The direct exchange after its chain let it through: circuit, endpoint, upstream head. */
  #forwardDirect(head: RequestHead, rule: RoutePlan, pool: RuntimePool, webSocket: boolean, view: HeadRequest | undefined, buf: Uint8Array): void {
    // Circuit limits (pools with a circuitBreaker only): over a limit the answer is 503 at once;
    // a request that must queue for a connection slot waits in the pipeline instead, unless its
    // chain ran here (the pipeline would run it again: a global limit counted twice).
    const circuit = pool.circuit
    if (circuit) {
      const refusedBy = circuit.tryAdmit(pool.limits!)
      if (refusedBy === 'queue') return view ? this.#awaitSlot(head, rule, pool, webSocket, view) : this.#startInner(innerHead(head, buf))
      if (refusedBy !== undefined) return this.#replyLocal(overloadReply(refusedBy))
      this.#x!.admitted = pool
    }
    this.#sendDirect(head, rule, pool, webSocket, view)
  }

  /** Endpoint, upstream head and link of a direct exchange its chain and circuit let through. */
  #sendDirect(head: RequestHead, rule: RoutePlan, pool: RuntimePool, webSocket: boolean, view: HeadRequest | undefined): void {
    const ctx = this.ctx
    const pickIp = view ? view.clientIp : this.clientIp
    const member = pool.pick({ clientIp: pickIp, headers: head, now: ctx.clock.now })
    // Empty or gone: the full pipeline answers (503) with its usual body.
    if (!member) return this.#respondLocal(503, 'no healthy upstream', false)
    this.#x!.pool = pool
    this.#x!.poolMember = member
    this.#x!.pickHead = head
    this.#x!.pickIp = pickIp
    if (rule.ir.streamIdleTimeoutMs !== undefined) this.#x!.streamIdleMs = rule.ir.streamIdleTimeoutMs
    this.#x!.routeIdleMs = rule.ir.streamIdleTimeoutMs ?? 0
    // Counted from the request's start: a verdict awaited first took part of it (#awaitVerdict).
    // A body still arriving restarts it when its last byte went upstream (#feedRequestBody).
    const timeout = this.#requestTimeout(rule, webSocket)
    this.#x!.respTimeoutMs = timeout
    if (this.#x!.headDeadline === Infinity && timeout > 0) this.#x!.headDeadline = Date.now() + timeout
    this.#x!.direct = true
    this.#x!.member = member.state
    member.state.inFlight++
    const tracer = telemetry.tracer
    if (tracer) {
      const parent = head.get('traceparent')
      this.#x!.span = tracer.start(parent, head.get('tracestate'))
      this.#x!.dropTraceparent = parent !== null
    }
    const text = this.#upstreamHeadText(head, view)
    this.#x!.upstreamHead = head.ascii ? text : Buffer.from(text, 'latin1')
    this.#x!.replayable = !webSocket && isReplayable(head.method, head)
    this.#x!.replayBytes = 0
    this.#x!.tUp = performance.now()
    const endpoint = member.state
    const links = ctx.links.pool(endpoint.key, endpoint.address, endpoint.port)
    // A handshake gets a connection of its own: after a 101 it is a tunnel, never pooled again.
    const link = webSocket ? undefined : links.take()
    if (link) link.owner = this
    this.#x!.link = link ?? links.connect(this)
    this.#sendHead(this.#x!.upstreamHead)
  }

  #startInner(raw: Uint8Array): void {
    // The pipeline times its own streams (per-route stream idle timeout, body deadline).
    this.#x!.streamIdleMs = 0
    // Bun.serve may close an idle link just as we reuse it: a bodiless request can be replayed.
    this.#x!.innerHead = this.#x!.reqBody === Body.None ? raw : undefined
    this.#x!.link = this.#innerLink()
    this.#sendHead(raw)
  }

  /**
   * Body bytes that came with the head go out in the same write, after they were checked: a
   * malformed chunked body is refused before the backend saw anything of the request.
   */
  #sendHead(head: string | Uint8Array): void {
    if (!this.#x!.reqDone && this.#buffered) this.#x!.pendingHead = head
    else this.#writeRequest(head)
  }

  /** Request bytes to the exchange's link, kept while the request is replayable; false when queued (pause the client). */
  #writeRequest(bytes: string | Uint8Array): boolean {
    if (this.#x!.replayable) {
      this.#x!.replayBytes += typeof bytes === 'string' ? bytes.length : bytes.byteLength
      if (this.#x!.replayBytes > REPLAY_MAX_BYTES) this.#dropReplay()
      else if (this.#x!.replayFirst === undefined) this.#x!.replayFirst = bytes
      else (this.#x!.replayRest ??= []).push(bytes)
    }
    return this.#x!.link!.write(bytes)
  }

  #dropReplay(): void {
    this.#x!.replayable = false
    this.#x!.replayFirst = undefined
    this.#x!.replayRest = undefined
  }

  #innerLink(): Link {
    if (this.#inner && !this.#inner.closed) return this.#inner
    this.#inner = openLink(undefined, 'inner', '127.0.0.1', this.ctx.innerPort(), this)
    return this.#inner
  }

  #startTunnel(): void {
    this.#phase = Phase.Tunnel
    this.ctx.inFlight++
    const x = (this.#x = new Exchange())
    // h2c prior knowledge goes to the h2 server when there is one (it relays gRPC trailers); it
    // reads the client from ctx.peers by this link's local port, like the inner server.
    const h2 = this.ctx.h2Port?.()
    if (h2 !== undefined && !this.#inner) this.#inner = openLink(undefined, 'inner', '127.0.0.1', h2, this)
    x.link = this.#innerLink()
    const buf = this.#buffered
    this.#buffered = undefined
    if (buf && !x.link.write(buf)) this.#pauseForLink()
  }

  /**
   * The direct path's upstream head: the client's fields minus hop-by-hop, plus the forwarding
   * ones (headers.ts), plus the chain's upstream edits (`view`).
   */
  #upstreamHeadText(head: RequestHead, view: HeadRequest | undefined): string {
    const ip = this.clientIp
    const edits = view?.edits
    const generateId = view === undefined || view.generateRequestId
    // The common case: nothing to strip or merge, so the client's head goes on verbatim (its
    // request line, Host and Content-Length included) with our lines appended.
    // Edits of fields the client did not send (requestID Generate, say) are appended the same way.
    if (!head.proxyFields && !this.#x!.dropTraceparent && head.target === head.originForm && (edits === undefined || !editsTouch(head, edits))) {
      const verbatim = head.text.slice(0, head.headBytes - 2)
      let lines = this.#forwardingLines(head.host)
      if (this.#x!.span) lines += `traceparent: ${traceparentOf(this.#x!.span)}\r\n`
      let hasRequestId = head.requestId
      if (edits) {
        for (const [name, value] of edits) if (value !== null) lines += `${name}: ${value}\r\n`
        if (typeof edits.get('x-request-id') === 'string') hasRequestId = true
      }
      return hasRequestId || !generateId ? `${verbatim}${lines}\r\n` : `${verbatim}${lines}${this.#requestIdLine()}\r\n`
    }
    const { lines, names, values } = head
    let text = `${head.method} ${head.originForm} HTTP/1.1\r\nhost: ${head.host}\r\n`
    let xff: string | undefined
    let forwarded: string | undefined
    const nominated = head.connectionValue === undefined ? undefined : nominatedFields(head.connectionValue)
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      if (DROPPED_REQUEST_FIELDS.has(name)) {
        if (name === 'x-forwarded-for') xff = xff === undefined ? values[i] : `${xff}, ${values[i]}`
        else if (name === 'forwarded') forwarded = forwarded === undefined ? values[i] : `${forwarded}, ${values[i]}`
        continue
      }
      if (nominated?.has(name) || edits?.has(name)) continue
      if (this.#x!.dropTraceparent && name === 'traceparent') continue
      text += `${lines[i]}\r\n`
    }
    if (this.#x!.span) text += `traceparent: ${traceparentOf(this.#x!.span)}\r\n`
    text += forwardingLines(xff, forwarded, ip, this.ctx.scheme, head.host, this.#forwardedFor(head.host))
    let hasRequestId = head.requestId
    if (edits) {
      for (const [name, value] of edits) if (value !== null) text += `${name}: ${value}\r\n`
      const id = edits.get('x-request-id')
      if (id !== undefined) hasRequestId = id !== null
    }
    if (!hasRequestId && generateId) text += this.#requestIdLine()
    if (this.#x!.reqBody === Body.Chunked) text += 'transfer-encoding: chunked\r\n'
    else if (head.contentLength >= 0) text += `content-length: ${head.contentLength}\r\n`
    // A WebSocket handshake keeps its Upgrade (hop-by-hop everywhere else).
    if (head.upgrade) text += `connection: upgrade\r\nupgrade: ${head.get('upgrade')}\r\n`
    return `${text}\r\n`
  }

  /** The X-Request-Id line we generate, its id kept for the access log. */
  #requestIdLine(): string {
    if (telemetry.log === undefined && telemetry.tracer === undefined) return requestIdLine()
    const id = crypto.randomUUID()
    this.#x!.requestId = id
    return `x-request-id: ${id}\r\n`
  }

  /** Our Forwarded element; a client repeats its Host, so it is built once per address, scheme and host (`forwarding`). */
  #forwardedFor(host: string): string {
    const cached = forwarding
    const scheme = this.ctx.scheme
    if (cached.host !== host || cached.ip !== this.clientIp || cached.scheme !== scheme || cached.element === '') {
      cached.ip = this.clientIp
      cached.host = host
      cached.scheme = scheme
      cached.element = forwardedElement(this.clientIp, scheme, host)
      cached.lines = ''
    }
    return cached.element
  }

  /** Our forwarding fields when the client sent none of its own: the same for every request with this Host. */
  #forwardingLines(host: string): string {
    const element = this.#forwardedFor(host)
    const cached = forwarding
    // Flattened once (a template literal is a rope of its parts until something reads it).
    if (cached.lines === '') cached.lines = flat(forwardingLines(undefined, undefined, this.clientIp, this.ctx.scheme, host, element))
    return cached.lines
  }

  /** Pass request body bytes to the link per the request's framing; returns how much of `data` belonged to the body. */
  #feedRequestBody(data: Uint8Array, start: number): number {
    let end: number
    let payload: number
    /** Where the bytes to pass on stop (before `end` only when trailers are dropped). */
    let sendEnd: number
    let tail: Uint8Array | undefined
    if (this.#x!.reqBody === Body.Length) {
      end = Math.min(data.byteLength, start + this.#x!.reqRemaining)
      payload = end - start
      this.#x!.reqRemaining -= payload
      if (this.#x!.reqRemaining === 0) this.#x!.reqDone = true
      sendEnd = end
    } else {
      const chunks = this.#x!.reqChunks!
      const wasInTrailer = chunks.inTrailer
      try {
        decodedBytes = 0
        end = chunks.decode(data, start, COUNT_PAYLOAD)
        payload = decodedBytes
      } catch (err) {
        if (!(err instanceof ChunkedDecodeError)) throw err
        this.#failExchange(400, 'invalid chunked body')
        return data.byteLength
      }
      if (chunks.done) this.#x!.reqDone = true
      sendEnd = end
      // Bun.serve refuses request trailers (400): the inner path gets the body without them,
      // ended by the blank line. Direct backends get them as sent.
      if (!this.#x!.direct) {
        if (wasInTrailer) sendEnd = start
        else if (chunks.trailerStart >= 0) sendEnd = chunks.trailerStart
        if (chunks.done) tail = CRLF
      }
    }
    // The limit counts payload, not chunk framing.
    this.#x!.reqBytes += payload
    if (this.#x!.reqLimit > 0 && this.#x!.reqBytes > this.#x!.reqLimit) {
      this.#failExchange(413, 'request body too large')
      return data.byteLength
    }
    let body = start === 0 && sendEnd === data.byteLength ? data : data.subarray(start, sendEnd)
    if (tail) body = Buffer.concat([body, tail])
    const head = this.#x!.pendingHead
    if (head !== undefined) {
      this.#x!.pendingHead = undefined
      const out = body.byteLength > 0 ? Buffer.concat([typeof head === 'string' ? Buffer.from(head, 'latin1') : head, body]) : head
      if (!this.#writeRequest(out)) this.#pauseForLink()
    } else if (body.byteLength > 0 && !this.#writeRequest(body)) this.#pauseForLink()
    if (this.#x!.reqDone) {
      this.#x!.bodyDeadline = Infinity
      // The wait for the response starts when the backend has the whole request: a slow upload
      // is the body deadline's business (408), not the upstream's (504).
      if (this.#x!.respTimeoutMs > 0 && !this.#x!.respStarted) this.#x!.headDeadline = Math.max(this.#x!.headDeadline, Date.now() + this.#x!.respTimeoutMs)
      if (this.#x!.respDone) this.#finish()
    }
    return end
  }

  // ---- link events ----

  onLinkOpen(link: Link): void {
    if (link === this.#inner) {
      // The inner server sees loopback: it learns the client's address from this port.
      this.#innerPort = link.socket!.localPort
      // A link opened by #startTunnel carries h2: the inner server sheds its streams itself (the front sees no requests in it).
      this.ctx.peers.set(this.#innerPort, { clientIp: this.clientIp, serverName: this.serverName, h2: this.#phase === Phase.Tunnel })
    }
  }

  onFailure(err: unknown): void {
    this.ctx.logger.error('http front: connection failed', { port: this.ctx.irPort, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
    this.forceClose()
  }

  onLinkDrain(link: Link): void {
    if (link === this.#x?.link && this.#pausedForLink) {
      this.#pausedForLink = false
      if (!this.#pausedForBuffer) this.socket.resume()
    }
  }

  onLinkData(link: Link, data: Uint8Array): void {
    this.#lastActivity = this.ctx.clock.now
    // Bytes from a link that serves no exchange: out of step, never used again.
    if (link !== this.#x?.link) return link === this.#inner ? this.#closeInner() : link.destroy()
    if (this.#phase === Phase.Tunnel) {
      const frames = this.#x!.toClient
      if (frames && this.#x!.wsClose) return this.#relayUntilClose(data, frames, true)
      frames?.feed(data)
      this.#writeClient(data)
      return
    }
    if (this.#x!.respDone) {
      // Bytes after the response: the link is out of step, never reuse it.
      this.#x!.linkReusable = false
      return
    }
    if (!this.#x!.respStarted) {
      const buf = this.#x!.respHead ? Buffer.concat([this.#x!.respHead, data]) : data
      this.#x!.respHead = undefined
      this.#onResponseHead(buf)
      return
    }
    this.#feedResponseBody(data, 0)
  }

  onLinkClose(link: Link, connected: boolean, error?: Error): void {
    if (link === this.#inner) {
      this.#inner = undefined
      if (this.#innerPort) this.ctx.peers.delete(this.#innerPort)
    }
    if (link !== this.#x?.link || this.#phase === Phase.Closed) return
    if (this.#phase === Phase.Tunnel) return this.#endClient()
    if (this.#phase !== Phase.Exchange) return
    if (this.#x!.respStarted) {
      if (this.#x!.respBody === Body.UntilClose) {
        this.#x!.respDone = true
        this.#x!.linkReusable = false
        this.#x!.closeAfter = true
        return this.#finish()
      }
      // Cut mid-body: the client must see a broken response, not a short one.
      return this.#destroyClient()
    }
    if (!this.#x!.direct) {
      const head = this.#x!.innerHead
      if (head && !this.#x!.retried && this.#x!.respHead === undefined) {
        this.#x!.retried = true
        this.#x!.link = this.#innerLink()
        this.#x!.link.write(head)
        return
      }
      return this.#failExchange(502, 'gateway pipeline unavailable')
    }
    const member = this.#x!.member!
    if (!connected) {
      this.#x!.pool!.outcome(member, 'refused')
      this.ctx.logger.warn('upstream connect failed', { endpoint: member.key })
      if (this.#retryRefused(link)) return
      return this.#failExchange(502, 'upstream connect error')
    }
    // A pooled link closed before any response byte: most likely the server closed it while idle
    // (keep-alive timeout, shutdown) just as our request went out, but it may also have read the
    // request and died on it. Sent again once, on a new connection, only when repeating it is
    // harmless (RFC 9110 §9.2.2: idempotent method or Idempotency-Key) and every byte sent is in
    // hand; a POST is never sent twice. A refused new connection moves on to another endpoint.
    if (link.served > 0 && !this.#x!.retried && this.#x!.respHead === undefined && this.#x!.replayable) {
      this.#x!.retried = true
      const fresh = this.ctx.links.pool(member.key, member.address, member.port).connect(this)
      this.#x!.link = fresh
      // Queued until the new connection opens: the client is paused until then (onLinkDrain).
      if (this.#x!.replayFirst !== undefined) fresh.write(this.#x!.replayFirst)
      for (const bytes of this.#x!.replayRest ?? []) fresh.write(bytes)
      if (fresh.backlogged) this.#pauseForLink()
      return
    }
    // A backend may reset on a method it does not know: that must not let a client eject it.
    if (STANDARD_METHODS.has(this.#x!.method)) this.#x!.pool!.outcome(member, 'local')
    // Why, for whoever reads the log: a reused connection (the keep-alive race) or a fresh one,
    // FIN or RST, and whether the request could have been sent again.
    this.ctx.logger.warn('upstream reset before response headers', {
      endpoint: member.key,
      method: this.#x!.method,
      reused: link.served > 0,
      close: error ? ((error as { code?: string }).code ?? error.message) : 'fin',
      replayed: this.#x!.retried,
    })
    this.#failExchange(503, 'upstream reset before response headers')
  }

  /**
   * The connection was refused: nothing reached the backend, and what was written to the link is
   * still queued there. Send it to another endpoint of the pool at once, whatever the method,
   * each endpoint at most once. False when none is left.
   */
  #retryRefused(failed: Link): boolean {
    const pool = this.#x!.pool!
    const tried = (this.#x!.tried ??= new Set())
    tried.add(this.#x!.poolMember!)
    if (tried.size >= pool.members.length || this.#x!.respStarted) return false
    const next = pool.pick({ clientIp: this.#x!.pickIp, headers: this.#x!.pickHead!, now: this.ctx.clock.now, tried })
    if (!next) return false
    this.ctx.logger.debug('connection refused: trying another endpoint', { endpoint: this.#x!.member!.key, next: next.state.key })
    this.#x!.member!.inFlight--
    this.#x!.member = next.state
    this.#x!.poolMember = next
    next.state.inFlight++
    const endpoint = next.state
    const links = this.ctx.links.pool(endpoint.key, endpoint.address, endpoint.port)
    const link = this.#x!.upgrade ? undefined : links.take()
    if (link) link.owner = this
    this.#x!.link = link ?? links.connect(this)
    let backlogged = false
    for (const bytes of failed.takeUnsent()) if (!this.#x!.link.write(bytes)) backlogged = true
    if (backlogged) this.#pauseForLink()
    return true
  }

  #onResponseHead(buf: Uint8Array): void {
    let head: ResponseHead | undefined
    try {
      head = parseResponseHead(buf, 0, false)
    } catch (err) {
      if (!(err instanceof HeadParseError)) throw err
      this.ctx.logger.warn('malformed upstream response', { error: err.message, direct: this.#x!.direct })
      return this.#failExchange(502, 'malformed upstream response')
    }
    if (!head) {
      if (buf.byteLength > MAX_HEAD_BYTES) return this.#failExchange(502, 'upstream response head too large')
      this.#x!.respHead = buf
      return
    }
    // ClientTrafficPolicy lateResponseHeaders: the backend's head edited before anything reads
    // it (the pipeline's heads were edited by the pipeline; interim 1xx go as they came).
    const edits = this.ctx.lateResponseHeaders
    if (edits !== undefined && this.#x!.direct && (head.status >= 200 || head.status === 101)) {
      buf = Buffer.concat([Buffer.from(editResponseHead(latin1(buf, 0, head.headEnd), edits), 'latin1'), buf.subarray(head.headEnd)])
      head = parseResponseHead(buf, 0, false)!
    }
    const status = head.status
    if (status < 200) {
      if (status === 101) {
        this.#x!.status = 101
        if (!this.#x!.upgrade) return this.#failExchange(502, 'unexpected protocol switch')
        // The backend accepted the upgrade: from here on, bytes both ways (WebSocket frames).
        this.#phase = Phase.Tunnel
        this.#x!.respStarted = true
        if (this.#x!.direct) {
          // Frames are tracked (not parsed) so that the gateway can close the session itself.
          this.#x!.pool!.outcome(this.#x!.member!, 101)
          // The handshake is one request; the session is counted and logged at its end.
          this.#observe()
          this.#releaseExchange()
          this.#x!.wsStart = Date.now()
          this.#x!.bytesOut = 0
          this.#x!.wsBytesIn = 0
          if (telemetry.metrics) requestMetrics.stream('websocket', wsLabels(this.#x!.labels)).opened++
          this.#x!.toBackend = new FrameTracker(true)
          this.#x!.toClient = new FrameTracker(false)
          this.#x!.toClient.feed(buf.subarray(head.headEnd))
          this.#x!.wsIdleMs = this.#x!.routeIdleMs
          this.#x!.wsLastData = this.ctx.clock.now
        }
        this.#writeClient(buf)
        const pending = this.#buffered
        this.#buffered = undefined
        if (pending) {
          // Frames the client sent right behind its handshake.
          this.#x!.toBackend?.feed(pending)
          if (!this.#x!.link!.write(pending)) this.#pauseForLink()
        }
        return
      }
      // Interim response (100 Continue, 103 Early Hints): relay and wait for the final one
      // (never to HTTP/1.0 clients, which do not know 1xx, RFC 9110 §15.2).
      if (!this.#x!.reqHttp10) this.#writeClient(buf.subarray(0, head.headEnd))
      if (head.headEnd < buf.byteLength) this.#onResponseHead(buf.subarray(head.headEnd))
      return
    }
    // A handshake answered with anything but 101 or an error of the backend's own is no
    // WebSocket: 502, as the pipeline's WebSocket proxy answers.
    if (this.#x!.upgrade && this.#x!.direct && status < 400) return this.#failExchange(502, 'backend did not accept the websocket upgrade')
    this.#x!.respStarted = true
    this.#x!.status = status
    if (hasNoBody(this.#x!.method, status)) this.#x!.respBody = Body.None
    else if (head.chunked) {
      this.#x!.respBody = Body.Chunked
      this.#x!.respChunks = new ChunkedDecoder()
    } else if (head.contentLength >= 0) {
      this.#x!.respBody = head.contentLength > 0 ? Body.Length : Body.None
      this.#x!.respRemaining = head.contentLength
    } else this.#x!.respBody = Body.UntilClose
    this.#x!.linkReusable = !head.close && this.#x!.respBody !== Body.UntilClose
    // A close-delimited body can only end with the connection; an upstream that closes its side
    // after a framed body need not end ours.
    if (this.#x!.respBody === Body.UntilClose || this.ctx.draining) this.#x!.closeAfter = true
    // The head goes out with whatever body bytes came along, in one write (one syscall).
    let prefix: string | Uint8Array[] | undefined
    if (this.#x!.direct) {
      this.#x!.pool!.outcome(this.#x!.member!, status)
      // "Connection: keep-alive" alone may stay: it is then our own, true, control option for
      // this connection (RFC 9110 §7.6.1 allows replacing the field with the proxy's own).
      const hopByHop = head.hopByHop && !head.keepAliveOnly
      if (hopByHop || this.#x!.closeAfter || head.http10) prefix = head.nominates ? this.#responseHeadText(buf) : this.#strippedHead(head, buf)
    } else {
      // The inner server's head is already clean, and says close itself when it closes; an
      // HTTP/1.0 exchange ends its link (Bun.serve closes it after answering).
      if (head.close) this.#x!.closeAfter = true
      if (this.#x!.reqHttp10) this.#x!.linkReusable = false
      if ((this.#x!.closeAfter && !head.close) || this.#x!.reqHttp10) prefix = this.#strippedHead(head, buf)
    }
    if (this.#x!.respBody === Body.None) {
      this.#x!.respDone = true
      if (head.headEnd < buf.byteLength) this.#x!.linkReusable = false
      if (prefix === undefined) this.#writeClient(buf.subarray(0, head.headEnd))
      else this.#writeClient(typeof prefix === 'string' ? wireBytes(prefix) : Buffer.concat(prefix))
      return this.#finish()
    }
    this.#feedResponseBody(buf, head.headEnd, prefix ?? 0)
  }

  /**
   * The upstream head's bytes minus its hop-by-hop lines, plus our framing and Connection lines:
   * slices of the buffer, no field strings (upstreams commonly send Connection: keep-alive).
   */
  #strippedHead(head: ResponseHead, buf: Uint8Array): Uint8Array[] {
    // Our own version on the status line (RFC 9110 §6.2), whatever the upstream spoke.
    const parts: Uint8Array[] = head.http10 ? [Buffer.from(`HTTP/1.1 ${head.status} ${head.statusText}\r\n`, 'latin1')] : []
    let at = head.http10 ? head.statusLineEnd : 0
    const ranges = head.hopByHopRanges
    if (ranges) {
      for (let i = 0; i < ranges.length; i += 2) {
        if (ranges[i]! > at) parts.push(buf.subarray(at, ranges[i]))
        at = ranges[i + 1]!
      }
    }
    // Up to the blank line, which goes after our own lines.
    parts.push(buf.subarray(at, head.headEnd - 2))
    parts.push(Buffer.from(`${this.#framingLines()}\r\n`, 'latin1'))
    return parts
  }

  /** The framing and connection lines we add to a relayed head (its own were hop-by-hop). */
  #framingLines(): string {
    let lines = ''
    if (this.#x!.respBody === Body.Chunked) lines += 'transfer-encoding: chunked\r\n'
    if (this.#x!.closeAfter) lines += 'connection: close\r\n'
    // An HTTP/1.0 client assumes the connection closes unless told otherwise.
    else if (this.#x!.reqHttp10) lines += 'connection: keep-alive\r\n'
    return lines
  }

  /** The upstream head minus hop-by-hop fields, with the framing and Connection we send. */
  #responseHeadText(buf: Uint8Array): string {
    // The first parse skipped the fields (most heads are relayed as they are): read them now.
    const head = parseResponseHead(buf, 0)!
    let nominated: Set<string> | undefined
    for (const [name, value] of head.headers) {
      if (name.length === 10 && name.toLowerCase() === 'connection') {
        const names = nominatedFields(value)
        if (names) for (const n of names) (nominated ??= new Set()).add(n)
      }
    }
    let text = `HTTP/1.1 ${head.status} ${head.statusText}\r\n`
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase()
      if (HOP_BY_HOP.has(lower) || nominated?.has(lower)) continue
      text += `${name}: ${value}\r\n`
    }
    return `${text}${this.#framingLines()}\r\n`
  }

  /**
   * Relay body bytes `data[start..]` per the response framing. `head` is what precedes them in
   * the same write: a rebuilt head, the parts of a stripped one, or an offset in `data` where
   * the original head starts.
   */
  #feedResponseBody(data: Uint8Array, start: number, head?: string | number | Uint8Array[]): void {
    let end = data.byteLength
    switch (this.#x!.respBody) {
      case Body.Length:
        end = Math.min(end, start + this.#x!.respRemaining)
        this.#x!.respRemaining -= end - start
        if (this.#x!.respRemaining === 0) this.#x!.respDone = true
        break
      case Body.Chunked:
        try {
          end = this.#x!.respChunks!.decode(data, start, NO_OP, this.#x!.endAtChunk)
        } catch (err) {
          if (!(err instanceof ChunkedDecodeError)) throw err
          this.ctx.logger.warn('malformed chunked upstream body', { error: err.message })
          return this.#destroyClient()
        }
        if (this.#x!.respChunks!.done) this.#x!.respDone = true
        break
    }
    if (typeof head === 'string') this.#writeClient(end > start ? Buffer.concat([Buffer.from(head, 'latin1'), data.subarray(start, end)]) : wireBytes(head))
    else if (Array.isArray(head)) {
      if (end > start) head.push(data.subarray(start, end))
      this.#writeClient(Buffer.concat(head))
    } else {
      const from = head ?? start
      if (end > from) this.#writeClient(from === 0 && end === data.byteLength ? data : data.subarray(from, end))
    }
    if (end < data.byteLength) this.#x!.linkReusable = false
    if (this.#x!.respDone) this.#finish()
    else if (this.#x!.endAtChunk && this.#x!.respChunks?.atChunkEnd) this.#writeLastChunk()
  }

  // ---- endings ----

  /** The response is complete: release the link, then serve what the client pipelined or close. */
  #finish(): void {
    const x = this.#x!
    if (!x.reqDone) {
      // Answered before the upload ended (an early 413 from a backend, say): the rest of the body
      // is still coming and cannot be told apart from a next request.
      x.closeAfter = true
      x.linkReusable = false
    }
    this.#stopWaiting()
    const link = x.link
    x.link = undefined
    // A link paused for this client's sake must not go back to a pool (or stay) paused.
    link?.resume()
    if (x.admitted) this.#releaseCircuit()
    // The inner pipeline records its own exchanges (handler.ts); the front records what it served.
    if (x.t0 !== 0 && (x.direct || x.localReason !== 0)) this.#observe()
    x.t0 = 0
    this.#releaseExchange()
    if (x.direct) {
      const member = x.member!
      member.inFlight--
      if (link && !link.closed) {
        if (x.linkReusable && link.pool) link.pool.release(link, this.ctx.links.tick)
        else link.close()
      }
      x.member = undefined
    } else if (link && !x.linkReusable) this.#closeInner()
    x.direct = false
    this.ctx.inFlight--
    this.#phase = Phase.Idle
    // The exchange's state goes with it: an idle connection holds none (bench/connections.ts).
    this.#x = undefined
    this.#lastActivity = this.ctx.clock.now
    if (x.closeAfter || this.ctx.draining) return this.#endClient()
    // Whatever paused the client for the finished exchange is over.
    this.#pausedForLink = false
    if (this.#pausedForBuffer) this.#pausedForBuffer = false
    this.socket.resume()
    // A client that does not read its answers gets no more of them: the next pipelined request
    // waits until it drained this one (memory stays bounded by one response's backlog).
    if (this.#clientQueue !== undefined) {
      this.#serveOnDrain = true
      return
    }
    this.#serveNext()
  }

  /**
   * What only the exchange needed (its heads, for retries and the log) goes with it: an idle
   * keep-alive connection holds its own fields and nothing else (bench/connections.ts).
   */
  #releaseExchange(): void {
    // The method is a slice of the head's text: holding it would hold the whole head.
    this.#x!.method = ''
    this.#x!.obsHead = undefined
    this.#x!.pickHead = undefined
    this.#x!.upstreamHead = ''
    this.#dropReplay()
    this.#x!.innerHead = undefined
    this.#x!.respHead = undefined
    this.#x!.respChunks = undefined
    this.#x!.reqChunks = undefined
  }

  #serveNext(): void {
    this.#serveBuffered()
    if (this.#clientEnded && this.#phase === Phase.Idle) this.#endClient()
  }

  /** A failure before any response byte reached the client: answer it (else cut the connection). */
  #failExchange(status: number, message: string): void {
    if (this.#x!.respStarted) return this.#destroyClient()
    const link = this.#x!.link
    this.#x!.link = undefined
    if (link) {
      if (link === this.#inner) this.#closeInner()
      else link.destroy()
    }
    if (this.#x!.member) {
      this.#x!.member.inFlight--
      this.#x!.member = undefined
    }
    if (this.#x!.admitted) this.#releaseCircuit()
    this.#x!.direct = false
    // Without a complete request body the connection cannot be reused: the rest of it is still coming.
    this.#respondLocal(status, message, !this.#x!.reqDone || status === 400 || status === 413)
  }

  #releaseCircuit(): void {
    const pool = this.#x!.admitted!
    this.#x!.admitted = undefined
    pool.circuit!.release(pool.limits)
  }

  /** Answer from the front itself and end the exchange. */
  #respondLocal(status: number, message: string, close: boolean): void {
    const body = `${message}\n`
    const closing = close || this.#x!.closeAfter || this.ctx.draining
    this.#x!.status = status
    if (this.#x!.localReason === 0) this.#x!.localReason = reasonIndex(message === 'overloaded' ? 'overloaded' : reasonForStatus(status))
    const head = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n${closing ? 'connection: close\r\n' : ''}\r\n`
    const edits = this.ctx.lateResponseHeaders
    this.#writeClient(`${edits === undefined ? head : editResponseHead(head, edits)}${this.#x!.method === 'HEAD' ? '' : body}`)
    this.#x!.respStarted = true
    this.#x!.respDone = true
    this.#x!.link = undefined
    if (closing) {
      this.#x!.closeAfter = true
      this.#x!.reqDone = true
    }
    this.#finish()
  }

  /** The worker is overloaded (load-shedder.ts): 503, come back in a second, to another instance if there is one. */
  #shed(): void {
    overloadCounters.shed++
    this.#x!.localReason = reasonIndex('overloaded')
    this.#x!.closeAfter = true
    this.#replyLocal(SHED_REPLY)
  }

  /** A chain's local answer (a policy said no): the same fields the pipeline would send. */
  #replyLocal(reply: LocalReply): void {
    const body = reply.body === undefined ? undefined : Buffer.from(reply.body)
    let fields = ''
    let typed = false
    for (const [name, value] of reply.headers ?? []) {
      const lower = name.toLowerCase()
      if (lower === 'content-length' || lower === 'transfer-encoding' || lower === 'connection') continue
      if (lower === 'content-type') typed = true
      fields += `${name}: ${value}\r\n`
    }
    if (body && !typed) fields += 'content-type: text/plain; charset=utf-8\r\n'
    const closing = this.#x!.closeAfter || this.ctx.draining || !this.#x!.reqDone
    this.#x!.status = reply.status
    if (this.#x!.localReason === 0) this.#x!.localReason = reasonIndex(reply.status === 503 && reply.headers?.some(([n]) => n === 'x-portico-overload') ? 'circuit_open' : reasonForStatus(reply.status))
    const edits = this.ctx.lateResponseHeaders
    const plain = `HTTP/1.1 ${reply.status} ${REASONS[reply.status] ?? 'Error'}\r\n${fields}content-length: ${body?.byteLength ?? 0}\r\n${closing ? 'connection: close\r\n' : ''}\r\n`
    const head = edits === undefined ? plain : editResponseHead(plain, edits)
    this.#writeClient(body && this.#x!.method !== 'HEAD' ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1'))
    this.#x!.respStarted = true
    this.#x!.respDone = true
    this.#x!.link = undefined
    if (closing) {
      this.#x!.closeAfter = true
      this.#x!.reqDone = true
    }
    this.#finish()
  }

  /** A malformed head: answer and close (what follows on the connection cannot be trusted). */
  #reject(error: RequestHeadError): void {
    this.#releaseHeld()
    this.#buffered = undefined
    this.#phase = Phase.Exchange
    this.ctx.inFlight++
    const x = (this.#x = new Exchange())
    x.t0 = performance.now()
    x.obsPort = this.ctx.active.current?.ports.get(this.ctx.irPort)
    x.closeAfter = true
    this.#respondLocal(error.status, error.reason, true)
  }

  /** The client is gone mid-exchange: nothing more will be written, links are not reusable. */
  #abandonExchange(): void {
    this.#stopWaiting()
    if (this.#x!.wsStart !== 0) this.#endWebSocket()
    this.#x!.t0 = 0
    const link = this.#x!.link
    this.#x!.link = undefined
    if (this.#x!.member) {
      this.#x!.member.inFlight--
      this.#x!.member = undefined
    }
    if (this.#x!.admitted) this.#releaseCircuit()
    if (link && link !== this.#inner) link.destroy()
    this.ctx.inFlight--
  }

  #closeInner(): void {
    const inner = this.#inner
    this.#inner = undefined
    if (this.#innerPort) this.ctx.peers.delete(this.#innerPort)
    this.#innerPort = 0
    inner?.close()
  }

  #endClient(): void {
    if (this.#clientQueue !== undefined) {
      this.#closeAfterFlush = true
      return
    }
    this.#releaseHeld()
    if (this.#phase !== Phase.Closed) {
      if (this.#phase === Phase.Exchange || this.#phase === Phase.Tunnel) this.#abandonExchange()
      this.#phase = Phase.Closed
      this.ctx.connections.delete(this)
      this.#closeInner()
    }
    this.socket.end()
  }

  #destroyClient(): void {
    this.#clientQueue = undefined
    this.#releaseHeld()
    if (this.#phase !== Phase.Closed) {
      if (this.#phase === Phase.Exchange || this.#phase === Phase.Tunnel) this.#abandonExchange()
      this.#phase = Phase.Closed
      this.ctx.connections.delete(this)
      this.#closeInner()
    }
    this.socket.terminate()
  }

  #pauseForLink(): void {
    if (this.#pausedForLink) return
    this.#pausedForLink = true
    this.socket.pause()
  }

  #writeClient(data: string | Uint8Array): void {
    if (this.#phase === Phase.Closed) return
    const x = this.#x
    if (x !== undefined) x.bytesOut += typeof data === 'string' ? data.length : data.byteLength
    // A slow client holds back the upstream instead of filling memory.
    const queue = this.#clientQueue
    if (queue !== undefined) {
      queue.push(data)
      x?.link?.pause()
      return
    }
    if (!this.#writeNow(data)) x?.link?.pause()
  }

  #writeNow(data: string | Uint8Array): boolean {
    const written = this.socket.write(data)
    const length = typeof data === 'string' ? data.length : data.byteLength
    if (written >= length || written < 0) return true
    ;(this.#clientQueue ??= []).push(typeof data === 'string' ? Buffer.from(data, 'latin1').subarray(written) : data.subarray(written))
    return false
  }

  // ---- telemetry ----

  /** Metrics, access log and span of the exchange the front served (direct, or answered itself). */
  #observe(): void {
    const end = performance.now()
    const port = this.#x!.obsPort
    const rule = this.#x!.obsRule
    const pool = this.#x!.pool
    let set: LabelSet
    if (rule && port) {
      if (lastSetRule === rule && lastSetPool === pool && lastSetPort === port) set = lastSet!
      else {
        set = requestMetrics.labelsFor(port, rule, pool)
        lastSet = set
        lastSetRule = rule
        lastSetPool = pool
        lastSetPort = port
      }
    } else set = requestMetrics.unrouted(port, this.ctx.irPort)
    this.#x!.labels = set
    const head = this.#x!.obsHead
    const bytesIn = (head?.headBytes ?? 0) + this.#x!.reqBytes
    const upMs = this.#x!.tUp !== 0 ? end - this.#x!.tUp : -1
    const durMs = end - this.#x!.t0
    if (telemetry.metrics) set.record(methodIndex(this.#x!.method), this.#x!.status, this.#x!.localReason, durMs / 1000, upMs < 0 ? -1 : upMs / 1000, bytesIn, this.#x!.bytesOut)
    if (telemetry.log === undefined && this.#x!.span === undefined) return
    const member = this.#x!.member
    logExchange({
      startMs: Date.now() - durMs,
      durationMs: durMs,
      upstreamMs: upMs,
      requestId: this.#x!.requestId ?? head?.get('x-request-id') ?? undefined,
      clientIp: this.clientIp,
      method: this.#x!.method,
      authority: head?.host ?? '',
      path: head?.target ?? '',
      protocol: head?.http10 ? 'HTTP/1.0' : 'HTTP/1.1',
      status: this.#x!.status,
      bytesIn,
      bytesOut: this.#x!.bytesOut,
      labels: set,
      endpoint: member ? member.key : undefined,
      userAgent: head?.get('user-agent') ?? undefined,
      reason: LOCAL_REASONS[this.#x!.localReason] ?? '',
      span: this.#x!.span,
      scheme: this.ctx.scheme,
      port: this.ctx.irPort,
    })
  }

  /** A direct WebSocket session ended: its counters and access log line. */
  #endWebSocket(): void {
    const start = this.#x!.wsStart
    this.#x!.wsStart = 0
    const set = this.#x!.labels
    const messages = (this.#x!.toBackend?.messages ?? 0) + (this.#x!.toClient?.messages ?? 0)
    if (telemetry.metrics) {
      const s = requestMetrics.stream('websocket', wsLabels(set))
      s.closed++
      s.messages += messages
      s.bytesOut += this.#x!.bytesOut
      s.bytesIn += this.#x!.wsBytesIn
    }
    logStream({ type: 'websocket', startMs: start, clientIp: this.clientIp, bytesIn: this.#x!.wsBytesIn, bytesOut: this.#x!.bytesOut, route: set?.route ?? '', backend: set?.backend ?? '', endpoint: this.#x!.member?.key, requestId: this.#x!.requestId, traceId: this.#x!.span?.traceId, messages })
  }

  // ---- direct WebSocket tunnels ----

  /** Close a direct WebSocket session from the gateway: a close frame each way, then both connections. */
  #closeWebSocket(code: number, reason: string): void {
    if (!this.#x!.toBackend || !this.#x!.toClient) return this.#endClient()
    if (this.#x!.wsClose) return
    this.#x!.wsClose = { code, reason, toClientSent: false, toBackendSent: false }
    if (this.#x!.toClient.atBoundary) this.#sendClose(true)
    if (this.#x!.toBackend.atBoundary) this.#sendClose(false)
  }

  /** While closing: relay up to the end of the frame in progress, then send our close frame. */
  #relayUntilClose(data: Uint8Array, frames: FrameTracker, toClient: boolean): void {
    const close = this.#x!.wsClose!
    if (toClient ? close.toClientSent : close.toBackendSent) return
    const cut = frames.feed(data, true)
    const part = cut < 0 ? data : data.subarray(0, cut)
    if (part.byteLength > 0) {
      if (toClient) this.#writeClient(part)
      else this.#x!.link?.write(part)
    }
    if (cut >= 0) this.#sendClose(toClient)
  }

  #sendClose(toClient: boolean): void {
    const close = this.#x!.wsClose!
    if (toClient) {
      close.toClientSent = true
      this.#writeClient(closeFrame(close.code, close.reason, false))
    } else {
      close.toBackendSent = true
      this.#x!.link?.write(closeFrame(close.code, close.reason, true))
    }
    if (close.toClientSent && close.toBackendSent) {
      this.#x!.link?.close()
      this.#endClient()
    }
  }

  /**
   * A new plan is live: a direct WebSocket session whose rule left the port, or whose backend
   * endpoint left the rule, is closed with 1012 (service restart: clients reconnect). Others keep
   * the backend they started with.
   */
  onPlan(routed: ReadonlyMap<string, ReadonlySet<string>> | undefined): void {
    // The pipeline's own endpoint choice is not known here: for its streams the rule decides.
    if (stillRouted(routed, this.#x?.ruleId ?? '', this.#x?.member?.key)) return
    if (this.#phase === Phase.Tunnel) this.#closeWebSocket(1012, 'route removed')
    else this.#endStream()
  }

  /** Outlives configuration changes: a WebSocket tunnel, or a response body of unknown length. */
  get isLongLived(): boolean {
    if (this.#phase === Phase.Tunnel) return this.#x!.toBackend !== undefined
    return this.#phase === Phase.Exchange && this.#x!.respStarted && !this.#x!.respDone && (this.#x!.respBody === Body.Chunked || this.#x!.respBody === Body.UntilClose)
  }

  /**
   * End a streamed response whose route is gone as cleanly as HTTP allows: a chunked body gets
   * its last-chunk at the next chunk boundary, a close-delimited one ends with the connection.
   * Either way the connection and the upstream side close after it.
   */
  #endStream(): void {
    if (this.#phase !== Phase.Exchange || !this.#x!.respStarted || this.#x!.respDone) return
    this.ctx.logger.debug('stream ended by a configuration change', { route: this.#x!.ruleId })
    if (this.#x!.respBody === Body.UntilClose) {
      this.#x!.respDone = true
      this.#x!.linkReusable = false
      this.#x!.closeAfter = true
      return this.#finish()
    }
    if (this.#x!.respBody !== Body.Chunked) return
    this.#x!.endAtChunk = true
    if (this.#x!.respChunks!.atChunkEnd) this.#writeLastChunk()
  }

  #writeLastChunk(): void {
    this.#writeClient(LAST_CHUNK)
    this.#x!.respDone = true
    this.#x!.linkReusable = false
    this.#x!.closeAfter = true
    this.#finish()
  }

  // ---- timeouts (FrontContext's sweep calls this every tick) ----

  sweep(now: number): void {
    const limits = this.ctx.limits
    switch (this.#phase) {
      case Phase.Idle:
        // Complete requests wait for a client that does not read: not a slow head, but a stream
        // that stopped moving.
        if (this.#serveOnDrain) {
          const idleMs = limits.streamIdleSeconds * 1000
          if (idleMs > 0 && now - this.#lastActivity > idleMs) this.#destroyClient()
          return
        }
        if (this.#buffered) {
          // Slowloris: a head that does not complete in time.
          if (limits.headerTimeoutMs > 0 && now - this.#headStarted > limits.headerTimeoutMs) this.#reject(new RequestHeadError(408, 'request header timeout'))
        } else {
          const idleMs = this.#served === 0 ? limits.headerTimeoutMs : limits.keepAliveIdleSeconds * 1000
          if (idleMs > 0 && now - this.#lastActivity > idleMs) this.#endClient()
        }
        return
      case Phase.Exchange:
        // The upstream's wait counts once the request body is complete (a policy or slot wait always).
        if (!this.#x!.respStarted && now > this.#x!.headDeadline && (this.#x!.reqDone || this.#x!.waiting !== 0)) {
          if (this.#x!.waiting !== 0) {
            this.ctx.logger.warn('request timeout before forwarding (policy verdict or circuit slot)', { route: this.#x!.ruleId })
            return this.#failExchange(504, 'request timeout')
          }
          this.ctx.logger.warn('upstream timeout', { endpoint: this.#x!.member?.key })
          return this.#failExchange(504, 'upstream request timeout')
        }
        if (!this.#x!.reqDone && now > this.#x!.bodyDeadline) return this.#failExchange(408, 'request body timeout')
        // A stream (either way) silent for too long; waiting for a head is bounded by its own deadline.
        if (this.#x!.streamIdleMs > 0 && (this.#x!.respStarted || !this.#x!.reqDone) && now - this.#lastActivity > this.#x!.streamIdleMs) return this.#destroyClient()
        return
      case Phase.Buffering:
        // The whole-body deadline (a slow upload is the client's fault: 408), and a body that stopped coming.
        if (now > this.#x!.heldDeadline) return this.#reject(new RequestHeadError(408, 'request body timeout'))
        if (limits.streamIdleSeconds > 0 && now - this.#lastActivity > limits.streamIdleSeconds * 1000) return this.#destroyClient()
        return
      case Phase.Tunnel:
        if (this.#x!.wsIdleMs <= 0) return
        // Pings do not count: only text, binary and continuation frames are activity.
        if (this.#x!.toBackend!.takeActivity() || this.#x!.toClient!.takeActivity()) this.#x!.wsLastData = now
        else if (now - this.#x!.wsLastData > this.#x!.wsIdleMs) this.#closeWebSocket(1001, 'stream idle timeout')
        return
    }
  }

  /** Graceful stop: idle connections close now, busy ones after their exchange. */
  drain(): void {
    if (this.#phase === Phase.Idle && !this.#buffered) this.#endClient()
    // Direct WebSocket sessions are told the gateway is going away; pipeline ones are closed by
    // the inner server's WebSocket proxy, h2c tunnels by its stop.
    else if (this.#phase === Phase.Tunnel && this.#x!.toBackend) this.#closeWebSocket(1001, 'gateway shutting down')
  }

  forceClose(): void {
    this.#destroyClient()
  }
}

/** The string as one flat buffer (JSC keeps concatenations as ropes until read). */
function flat(text: string): string {
  void text.charCodeAt(0)
  return text
}

function wsLabels(set: LabelSet | undefined): string {
  return set ? `gateway="${set.gateway}",listener="${set.listener}",route="${set.route}",backend="${set.backend}"` : 'gateway="",listener="",route="",backend=""'
}

/** A circuit limit's 503, as the pipeline answers it (proxy.ts overloadResponse). */
function overloadReply(limit: string): LocalReply {
  return { status: 503, headers: [['x-portico-overload', `circuit-open ${limit}`]], body: `upstream overloaded: ${limit}\n` }
}

/** The pool a rule's request goes to when the front forwards it itself, or undefined (the pipeline serves it). */
function directPool(rule: RoutePlan, webSocket: boolean): RuntimePool | undefined {
  if (!(webSocket ? rule.directWebSocket : rule.direct) || rule.action.kind !== 'forward') return undefined
  const pool = chooseBackend(rule.action)?.pool
  return pool && pool.members.length > 0 ? pool : undefined
}

/** Some upstream edit names a field the client sent (so its line must go): the head cannot go on verbatim. */
function editsTouch(head: RequestHead, edits: ReadonlyMap<string, string | null>): boolean {
  for (const name of edits.keys()) if (name === 'x-request-id' ? head.requestId : head.has(name)) return true
  return false
}

/**
 * The head for the inner server: the bytes as received, except an absolute-form target, which
 * becomes origin-form with its authority as Host (the server must ignore Host then, RFC 9112
 * §3.2.2, and the inner server would route by Host).
 */
function innerHead(head: RequestHead, buf: Uint8Array): Uint8Array {
  // A chunked request goes on with one canonical Transfer-Encoding line: the inner server reads
  // its framing exactly as we did ("Chunked", " chunked ", two lines are not left to its parser).
  const rewriteTe = head.chunked && !canonicalTe(head)
  if (head.target === head.originForm && !rewriteTe) return head.headBytes === buf.byteLength ? buf : buf.subarray(0, head.headBytes)
  let text = `${head.method} ${head.originForm} HTTP/1.${head.http10 ? 0 : 1}\r\nHost: ${head.host}\r\n`
  for (let i = 0; i < head.names.length; i++) {
    const name = head.names[i]
    if (name !== 'host' && !(rewriteTe && name === 'transfer-encoding')) text += `${head.lines[i]}\r\n`
  }
  if (rewriteTe) text += 'Transfer-Encoding: chunked\r\n'
  return Buffer.from(`${text}\r\n`, 'latin1')
}

/** One Transfer-Encoding line whose value is exactly "chunked". */
function canonicalTe(head: RequestHead): boolean {
  const { names, lines } = head
  let seen = false
  for (let i = 0; i < names.length; i++) {
    if (names[i] !== 'transfer-encoding') continue
    if (seen || !/^transfer-encoding: ?chunked$/i.test(lines[i]!) || !lines[i]!.endsWith('chunked')) return false
    seen = true
  }
  return seen
}

