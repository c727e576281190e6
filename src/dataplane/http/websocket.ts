/**
 * WebSocket proxying: a client upgrade that matched an HTTPRoute is bridged to one backend
 * endpoint, frame by frame.
 *
 * The backend is connected first (Bun's client WebSocket) and the client gets its 101 only once
 * the backend accepted, with the subprotocol the backend chose; a refused upgrade answers the
 * backend's own 4xx/5xx, or 502. Each session keeps the route and pool objects it started with
 * across snapshot swaps, unless a swap removes its rule from its listener port or its endpoint
 * from that rule's pools: then both sides are closed with 1012 "route removed" (RFC 6455: service
 * restart; clients should reconnect). See WebSocketProxy.onPlan.
 *
 * Backpressure (Bun 1.4.5 facts): ServerWebSocket.send returns -1 when it queued under
 * backpressure and 0 when it DROPPED the message, and the client WebSocket buffers without
 * bound and has no drain event. So: backend → client, on -1 the backend is paused until the
 * server's `drain`, and anything that still arrives (or was refused with 0) waits in a queue that
 * is flushed in order; client → backend, the client socket is paused while the backend's
 * bufferedAmount is above a high-water mark, polled until it falls.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from 'bun'
import { routedEndpoints, stillRouted, type Plan, type PortPlan, type RoutePlan } from '../snapshot.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import type { RequestState } from './context.ts'
import type { ResponseHook } from './chain.ts'
import { setUpstreamFields } from './headers.ts'
import { isWebSocketUpgrade as isUpgrade, WS_HANDSHAKE_TIMEOUT_MS } from './constants.ts'
import { errorResponse, type ProxyDeps } from './proxy.ts'
import { IdleTimer } from './streaming.ts'
import { requestMetrics, type StreamCounters } from '../../telemetry/request-metrics.ts'
import { logStream, telemetry } from '../../telemetry/observe.ts'
import { editResponseHeaders } from '../../policy/client-traffic/response-headers.ts'

/** Client → backend: pause the client above this many bytes queued towards the backend. */
const BACKEND_HIGH_WATER = 1024 * 1024
const BACKEND_LOW_WATER = 256 * 1024
const BACKEND_DRAIN_POLL_MS = 5
/** Pings forwarded and not yet answered that are remembered for pong de-duplication. */
const MAX_PENDING_PINGS = 16
/** Close code and reason for sessions whose rule or endpoint a swap removed (RFC 6455 1012: service restart). */
export const ROUTE_REMOVED_CODE = 1012
export const ROUTE_REMOVED_REASON = 'route removed'
/** Bun's default; messages above it close the session with 1009 (both directions). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

type Message = string | Buffer
type Client = ServerWebSocket<WebSocketSession>
/**
 * Any Bun.serve of the data plane: they are typed Server<undefined> (the session rides in
 * `data`, which only the `websocket` handlers read), so upgrade() is called through this view.
 */
type UpgradeServer = Pick<Server<WebSocketSession>, 'upgrade'>

/** Client-initiated (Sec-WebSocket-*) headers that belong to one hop: the backend hop makes its own. */
const PER_HOP = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-websocket-accept']

/** A GET with `Upgrade: websocket` (RFC 6455 §4.1); Connection: upgrade is checked by server.upgrade. */
export function isWebSocketUpgrade(req: Request): boolean {
  return isUpgrade(req.method, req.headers.get('upgrade'))
}

/** Proxies the upgrade and the session; the handler gives it a request that matched a forward rule. */
export type WebSocketUpgrader = (
  state: RequestState,
  route: RoutePlan,
  pool: RuntimePool,
  responseFilters: readonly (readonly ResponseHook[])[],
  /** The listener port's plan the request was matched on (its IR port keys the session). */
  port: PortPlan,
) => Promise<Response | undefined>


/** Open sessions of one data plane and the Bun.serve `websocket` handlers that drive them. */
export class WebSocketProxy {
  readonly #sessions = new Set<WebSocketSession>()
  readonly handlers: WebSocketHandler<WebSocketSession>
  /** The live plan, as last given to onPlan (undefined before the first). */
  #plan: Plan | undefined

  constructor(private readonly deps: ProxyDeps) {
    this.handlers = {
      maxPayloadLength: MAX_MESSAGE_BYTES,
      // Bun pings idle clients before this and closes dead ones; the route's stream idle
      // timeout (data only) is enforced by the session.
      idleTimeout: 120,
      sendPings: true,
      open: (ws) => ws.data.attach(ws),
      message: (ws, message) => ws.data.fromClient(message),
      drain: (ws) => ws.data.clientDrained(),
      close: (ws, code, reason) => ws.data.clientClosed(code, reason),
      ping: (ws, data) => ws.data.clientPing(data),
      pong: (ws, data) => ws.data.clientPong(data),
      error: (err, ws) => {
        this.deps.logger.warn('websocket handler failed', { route: ws.data.routeId, error: String(err) })
        ws.data.abort(1011, 'gateway error')
      },
    }
  }

  get size(): number {
    return this.#sessions.size
  }

  /** Close every session with `code` (1001 on gateway stop), both sides. */
  closeAll(code: number, reason: string): void {
    for (const session of [...this.#sessions]) session.abort(code, reason)
  }

  /**
   * A new plan is live (HttpDataplane.applyPlan calls this right after publishing it). Sessions
   * whose rule id is gone from their listener port, or whose endpoint is gone from that rule's
   * pools, are closed on both sides with 1012 "route removed"; the others are not touched.
   * Costs one pass over the sessions and, per port that has some, one over its rules.
   */
  onPlan(plan: Plan): void {
    this.#plan = plan
    if (this.#sessions.size === 0) return
    const routed = new Map<number, ReadonlyMap<string, ReadonlySet<string>> | undefined>()
    let closed = 0
    for (const session of [...this.#sessions]) {
      if (survives(session, plan, routed)) continue
      closed++
      this.deps.logger.debug('websocket closed by a configuration change', { route: session.routeId, endpoint: session.endpoint })
      session.abort(ROUTE_REMOVED_CODE, ROUTE_REMOVED_REASON)
    }
    if (closed > 0) this.deps.logger.info('websocket sessions closed: route or backend removed', { revision: plan.revision, closed })
  }

  /** The upgrader for one request of `server` (handler.ts calls it after matching and filters). */
  upgraderFor(req: Request, server: Server<undefined>): WebSocketUpgrader {
    return (state, route, pool, responseFilters, port) =>
      this.upgrade(req, server as unknown as UpgradeServer, state, route, pool, responseFilters, port)
  }

  /** Connect to the backend, then upgrade the client. undefined = upgraded (Bun's contract). */
  async upgrade(
    req: Request,
    server: UpgradeServer,
    state: RequestState,
    route: RoutePlan,
    pool: RuntimePool,
    responseFilters: readonly (readonly ResponseHook[])[],
    port: PortPlan,
  ): Promise<Response | undefined> {
    const member = pool.pick({ clientIp: state.clientIp, headers: state.headers, now: Date.now() })
    if (!member) return errorResponse(503, 'no healthy upstream')

    const connected = await this.#connect(state, route, pool, member)
    if (connected instanceof Response) return connected
    const backend = connected

    const headers = new Headers()
    if (backend.protocol) headers.set('sec-websocket-protocol', backend.protocol)
    for (const filters of responseFilters) for (const filter of filters) filter(state, headers, 101)
    const late = port.ir.connection?.lateResponseHeaders
    if (late) editResponseHeaders(headers, late)

    const session = new WebSocketSession(backend, route, port.port, member.state.key, this.#sessions, this.deps)
    if (telemetry.metrics || telemetry.log) {
      const set = requestMetrics.labelsFor(port, route, pool)
      session.observe(requestMetrics.stream('websocket', `gateway="${set.gateway}",listener="${set.listener}",route="${set.route}",backend="${set.backend}"`), state.clientIp, set.route, set.backend, state.requestId)
    }
    if (!server.upgrade(req, { headers, data: session })) {
      // E.g. no Sec-WebSocket-Key: Bun cannot complete the client handshake.
      session.abort(1002, 'client handshake invalid')
      return errorResponse(400, 'invalid websocket handshake')
    }
    // A swap that landed during the backend handshake was checked without this session: check it
    // now (the client hears 1012 right after its 101, as any session on a removed route).
    const live = this.#plan
    if (live && live.ports.get(port.port) !== port && !survives(session, live, new Map())) {
      session.abort(ROUTE_REMOVED_CODE, ROUTE_REMOVED_REASON)
    }
    return undefined
  }

  /** Open the backend WebSocket; a Response when it did not open. */
  async #connect(state: RequestState, route: RoutePlan, pool: RuntimePool, member: PoolMember): Promise<WebSocket | Response> {
    const headers = new Headers(state.upstreamHeaders)
    for (const name of PER_HOP) headers.delete(name)
    setUpstreamFields(headers, state)
    const protocols = subprotocols(state.req.headers.get('sec-websocket-protocol'))

    const url = member.origin.replace(/^http/, 'ws') + state.path + state.query
    const endpoint = member.state
    const backend = new WebSocket(url, {
      headers,
      protocols,
      // Compression stays a per-hop choice; recompressing at the gateway costs CPU for nothing.
      perMessageDeflate: false,
      ...(pool.tls ? { tls: { serverName: pool.tls.serverName, ...(pool.tls.ca ? { ca: pool.tls.ca } : {}) } } : {}),
    } as Bun.WebSocketOptions)
    // Until the client side is open nothing can be forwarded: let TCP hold the backend's data.
    backend.pause()

    const timeoutMs = Math.min(route.backendTimeoutMs ?? Infinity, route.requestTimeoutMs ?? Infinity, WS_HANDSHAKE_TIMEOUT_MS)
    endpoint.inFlight++
    try {
      const outcome = await new Promise<'open' | 'timeout' | 'client-gone' | ErrorEvent>((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), timeoutMs)
        const onAbort = () => resolve('client-gone')
        state.req.signal.addEventListener('abort', onAbort, { once: true })
        const done = (value: 'open' | ErrorEvent) => {
          clearTimeout(timer)
          state.req.signal.removeEventListener('abort', onAbort)
          resolve(value)
        }
        backend.addEventListener('open', () => done('open'), { once: true })
        backend.addEventListener('error', (ev) => done(ev as ErrorEvent), { once: true })
      })
      if (outcome === 'open') {
        this.deps.registry.recordSuccess(endpoint)
        return backend
      }
      closeQuietly(backend)
      if (outcome === 'client-gone') return errorResponse(499, 'client closed request')
      if (outcome === 'timeout') return errorResponse(504, 'upstream websocket handshake timeout')
      const refusedWith = refusalStatus(outcome.message)
      if (refusedWith !== undefined) {
        // The backend answered: it is healthy, it just did not want this upgrade.
        this.deps.registry.recordSuccess(endpoint)
        this.deps.logger.debug('backend refused websocket upgrade', { route: route.id, endpoint: endpoint.key, status: refusedWith })
        return errorResponse(refusedWith >= 400 && refusedWith <= 599 ? refusedWith : 502, 'upstream refused websocket upgrade')
      }
      this.deps.registry.recordFailure(endpoint)
      this.deps.logger.warn('upstream websocket connect failed', { route: route.id, endpoint: endpoint.key, error: outcome.message })
      return errorResponse(502, 'upstream connect error')
    } finally {
      endpoint.inFlight--
    }
  }
}

/**
 * One bridged connection: the backend WebSocket (open before the client's 101) and the client's
 * ServerWebSocket (attached in `open`).
 */
export class WebSocketSession {
  readonly routeId: string
  #client: Client | undefined
  /** abort() before the client's `open`: the code it closes the client with once attached. */
  #abortedWith: { code: number; reason: string } | undefined
  /** Backend → client messages waiting for the client to drain (ordered). */
  readonly #toClient: Message[] = []
  /** Backend close to pass on once #toClient is flushed (or the client attaches). */
  #pendingClose: { code: number; reason: string } | undefined
  #closed = false
  #drainPoll: Timer | undefined
  readonly #idle: IdleTimer | undefined
  /** Ping payloads forwarded each way; the matching pong is dropped (Bun already auto-ponged). */
  readonly #pingsToBackend: string[] = []
  readonly #pingsToClient: string[] = []
  /** Telemetry (observe()): session counters, and what this session moved. */
  #counters: StreamCounters | undefined
  #obs: { clientIp: string; route: string; backend: string; requestId: string | undefined; startMs: number; bytesIn: number; bytesOut: number; messages: number } | undefined

  constructor(
    private readonly backend: WebSocket,
    route: RoutePlan,
    /** IR port of the listener the session came in on (the key of Plan.ports). */
    readonly port: number,
    /** The backend endpoint, "address:port". */
    readonly endpoint: string,
    private readonly registry: Set<WebSocketSession>,
    private readonly deps: ProxyDeps,
  ) {
    this.routeId = route.id
    registry.add(this)
    const idleMs = route.ir.streamIdleTimeoutMs
    if (idleMs !== undefined && idleMs > 0) this.#idle = new IdleTimer(idleMs, () => this.abort(1001, 'stream idle timeout'))
    backend.addEventListener('message', (ev) => this.#fromBackend(ev.data as Message))
    backend.addEventListener('ping', (ev) => this.#backendPing(ev.data as Buffer))
    backend.addEventListener('pong', (ev) => this.#backendPong(ev.data as Buffer))
    backend.addEventListener('close', (ev) => this.#backendClosed(ev.code, ev.reason))
    backend.addEventListener('error', (ev) => this.deps.logger.debug('backend websocket error', { route: this.routeId, error: (ev as ErrorEvent).message }))
  }

  /** Count this session in `counters` (opened now, closed at its end) and log it at its end. */
  observe(counters: StreamCounters, clientIp: string, route: string, backend: string, requestId: string | undefined): void {
    this.#counters = telemetry.metrics ? counters : undefined
    if (this.#counters) this.#counters.opened++
    this.#obs = { clientIp, route, backend, requestId, startMs: Date.now(), bytesIn: 0, bytesOut: 0, messages: 0 }
  }

  attach(ws: Client): void {
    if (this.#abortedWith) {
      ws.close(this.#abortedWith.code, this.#abortedWith.reason)
      return
    }
    this.#client = ws
    this.#flushToClient()
    if (this.#pendingClose && this.#toClient.length === 0) return this.#closeClient()
    if (!this.#closed) this.backend.resume()
  }

  // ------------------------------------------------------------ client → backend

  fromClient(message: Message): void {
    if (this.#closed) return
    this.#idle?.touch()
    const obs = this.#obs
    if (obs) {
      obs.messages++
      obs.bytesIn += typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength
    }
    this.backend.send(message)
    if (this.backend.bufferedAmount > BACKEND_HIGH_WATER) this.#pauseClient()
  }

  #pauseClient(): void {
    if (this.#drainPoll || !this.#client) return
    this.#client.pause()
    const poll = () => {
      if (this.#closed) return
      if (this.backend.bufferedAmount > BACKEND_LOW_WATER) {
        this.#drainPoll = setTimeout(poll, BACKEND_DRAIN_POLL_MS)
        return
      }
      this.#drainPoll = undefined
      this.#client?.resume()
    }
    this.#drainPoll = setTimeout(poll, BACKEND_DRAIN_POLL_MS)
  }

  clientPing(data: Buffer): void {
    if (this.#closed) return
    remember(this.#pingsToBackend, data)
    this.backend.ping(data)
  }

  clientPong(data: Buffer): void {
    if (this.#closed || forget(this.#pingsToClient, data)) return
    // Unsolicited pong (a heartbeat): pass it on.
    this.backend.pong(data)
  }

  clientClosed(code: number, reason: string): void {
    this.#client = undefined
    if (this.#closed) return this.#finish()
    this.#closed = true
    try {
      if (isSendableCloseCode(code)) this.backend.close(code, reason)
      else if (code === 1005) this.backend.close()
      // 1006 (no close frame) cannot be sent; "going away" is the closest the backend can hear.
      else this.backend.close(1001, 'client connection lost')
    } catch {
      closeQuietly(this.backend)
    }
    this.#finish()
  }

  // ------------------------------------------------------------ backend → client

  #fromBackend(message: Message): void {
    this.#idle?.touch()
    const obs = this.#obs
    if (obs) {
      obs.messages++
      obs.bytesOut += typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength
    }
    const client = this.#client
    if (!client || this.#toClient.length > 0) {
      this.#toClient.push(message)
      return
    }
    const sent = client.send(message)
    if (sent === 0) {
      // Dropped by Bun (over backpressureLimit): keep it for the drain.
      this.#toClient.push(message)
      this.backend.pause()
    } else if (sent === -1) this.backend.pause()
  }

  clientDrained(): void {
    this.#flushToClient()
    if (this.#toClient.length > 0) return
    if (this.#pendingClose) return this.#closeClient()
    if (!this.#closed) this.backend.resume()
  }

  #flushToClient(): void {
    const client = this.#client
    if (!client) return
    while (this.#toClient.length > 0) {
      const sent = client.send(this.#toClient[0]!)
      if (sent === 0) return // still full; the next drain retries it
      this.#toClient.shift()
      if (sent === -1) return
    }
  }

  #backendPing(data: Buffer): void {
    if (!this.#client) return
    remember(this.#pingsToClient, data)
    this.#client.ping(data)
  }

  #backendPong(data: Buffer): void {
    if (!this.#client || forget(this.#pingsToBackend, data)) return
    this.#client.pong(data)
  }

  #backendClosed(code: number, reason: string): void {
    if (this.#closed) return this.#finish()
    this.#pendingClose = { code, reason }
    // Messages still queued for the client go first; the close follows from the drain.
    if (this.#client && this.#toClient.length === 0) this.#closeClient()
  }

  #closeClient(): void {
    const client = this.#client
    const close = this.#pendingClose ?? { code: 1000, reason: '' }
    this.#closed = true
    if (client) {
      // 1006 means the backend vanished without a close frame: the client should see the same.
      if (close.code === 1006) client.terminate()
      else client.close(close.code, close.reason)
    }
    this.#finish()
  }

  // ------------------------------------------------------------ both

  /** Close both sides with `code` (gateway stop, idle timeout, handler error). */
  abort(code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#toClient.length = 0
    try {
      this.backend.close(code, reason)
    } catch {
      closeQuietly(this.backend)
    }
    if (this.#client) this.#client.close(code, reason)
    else this.#abortedWith = { code, reason }
    this.#finish()
  }

  #finish(): void {
    const obs = this.#obs
    if (obs) {
      this.#obs = undefined
      const c = this.#counters
      if (c) {
        c.closed++
        c.bytesIn += obs.bytesIn
        c.bytesOut += obs.bytesOut
        c.messages += obs.messages
      }
      logStream({ type: 'websocket', startMs: obs.startMs, clientIp: obs.clientIp, bytesIn: obs.bytesIn, bytesOut: obs.bytesOut, route: obs.route, backend: obs.backend, endpoint: this.endpoint, requestId: obs.requestId, messages: obs.messages })
    }
    this.#idle?.stop()
    if (this.#drainPoll) clearTimeout(this.#drainPoll)
    this.#drainPoll = undefined
    this.registry.delete(this)
  }
}

/** Whether `session` may keep running under `plan`; `cache` holds each port's rule index for one pass. */
function survives(session: WebSocketSession, plan: Plan, cache: Map<number, ReadonlyMap<string, ReadonlySet<string>> | undefined>): boolean {
  let routed = cache.get(session.port)
  if (!cache.has(session.port)) {
    const port = plan.ports.get(session.port)
    routed = port ? routedEndpoints(port, plan) : undefined
    cache.set(session.port, routed)
  }
  return stillRouted(routed, session.routeId, session.endpoint)
}

/** "Expected 101 status code: 403" is how Bun's client reports a refused upgrade. */
function refusalStatus(message: string | undefined): number | undefined {
  const match = /Expected 101 status code: (\d{3})/.exec(message ?? '')
  return match ? Number(match[1]) : undefined
}

function subprotocols(header: string | null): string[] {
  if (!header) return []
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
}

/** Codes the client WebSocket API accepts in close() (RFC 6455 §7.4). */
function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && (code < 1004 || code > 1006)) || (code >= 3000 && code <= 4999)
}

function closeQuietly(ws: WebSocket): void {
  try {
    ws.terminate()
  } catch {}
}

function remember(pending: string[], data: Buffer): void {
  pending.push(data.toString('latin1'))
  if (pending.length > MAX_PENDING_PINGS) pending.shift()
}

function forget(pending: string[], data: Buffer): boolean {
  const i = pending.indexOf(data.toString('latin1'))
  if (i < 0) return false
  pending.splice(i, 1)
  return true
}
