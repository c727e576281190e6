/**
 * HTTP/1.1 client on Bun.connect with a keep-alive pool per endpoint (address:port).
 *
 * Replaces fetch() on the proxy's hot path: fetch costs ~40 µs of CPU per request in Bun 1.4.5
 * and adds headers of its own (User-Agent, Accept, Connection). Here the request head is exactly
 * what the caller built, written in one write, and the response head is parsed just enough to
 * frame the body.
 *
 * Idle connections are kept most-recently-used first (a warm few stay busy, the rest age out).
 * A pooled connection the server closed while idle is noticed by its close event; if the close
 * races with our write, the request is replayed once on a fresh connection when that is safe.
 */
import type { SocketHandler } from 'bun'
import { Http1Connection, PRECISE_TIMEOUT_BELOW_MS, type ConnectionOwner, type Exchange, type Http1Request, type Http1Response } from './connection.ts'
import { errorCode, UpstreamError } from './errors.ts'
// Which requests may be replayed after a stale-connection race (idempotent methods, Idempotency-Key).
import { isReplayable as replayableRequest } from '../../http/constants.ts'

export interface Http1Endpoint {
  /** Pool key, e.g. "10.0.0.7:8080". */
  readonly key: string
  readonly address: string
  readonly port: number
}

export interface Http1AgentOptions {
  /** Idle connections kept per endpoint (nginx's `keepalive` in the bench uses 256). */
  readonly maxIdlePerEndpoint?: number
  /** Idle connections are closed after about this long (to housekeeping precision). */
  readonly idleTimeoutMs?: number
  readonly connectTimeoutMs?: number
  /**
   * Period of the housekeeping timer, which closes connections idle too long, enforces long
   * head timeouts, and starts watching the client's abort for requests waiting longer than one
   * period. Per-request work then needs no timer, no socket timeout and no event listener.
   */
  readonly housekeepingMs?: number
  /** Head timeouts shorter than this get a timer of their own; longer ones are checked by housekeeping. */
  readonly preciseTimeoutBelowMs?: number
}

export interface Http1RequestOptions {
  /** Deadline for the complete response head, from now (Infinity: none). Covers connecting. */
  readonly timeoutMs?: number
  /** The client request: when it aborts (client gone) a long wait for the head ends. Read lazily. */
  readonly client?: { readonly signal: AbortSignal }
  /** Do not take a pooled connection (used after a failure, where a replay must be a new attempt). */
  readonly fresh?: boolean
}


const HANDLERS: SocketHandler<Http1Connection> = {
  data(socket, data) {
    socket.data.onData(data)
  },
  drain(socket) {
    socket.data.onDrain()
  },
  close(socket, error) {
    socket.data.onGone(error)
  },
  error(socket, error) {
    socket.data.onGone(error)
  },
  end(socket) {
    // The server finished sending (FIN): ends a close-delimited body, or kills an idle connection.
    socket.data.onGone(undefined)
    socket.end()
  },
}

export class EndpointPool implements ConnectionOwner {
  readonly #idle: Http1Connection[] = []
  /** Open connections, busy or idle (for stats and for closing all). */
  readonly #open = new Set<Http1Connection>()

  constructor(
    readonly endpoint: Http1Endpoint,
    readonly maxIdle: number,
    /** Housekeeping ticks after which an idle connection is closed. */
    readonly idleTicks: number,
    readonly clock: { readonly tick: number },
    readonly preciseTimeoutBelowMs: number,
  ) {}

  get idleCount(): number {
    return this.#idle.length
  }

  get openCount(): number {
    return this.#open.size
  }

  takeIdle(): Http1Connection | undefined {
    const idle = this.#idle
    while (idle.length > 0) {
      const conn = idle.pop()!
      if (conn.closed) continue
      return conn
    }
    return undefined
  }

  track(conn: Http1Connection): void {
    this.#open.add(conn)
  }

  release(conn: Http1Connection): void {
    if (this.#idle.length >= this.maxIdle) return conn.close()
    conn.idleSince = this.clock.tick
    this.#idle.push(conn)
  }

  /**
   * Close connections idle for too long; for requests waiting for a head, enforce long deadlines
   * and start watching the client of those waiting since an earlier tick.
   */
  sweep(tick: number, now: number): void {
    // The stack's bottom holds the least recently used connections.
    while (this.#idle.length > 0 && tick - this.#idle[0]!.idleSince >= this.idleTicks) this.#idle[0]!.close()
    for (const conn of this.#open) {
      const since = conn.waitingSince
      if (since === undefined) continue
      conn.expireIfDue(now)
      if (since < tick) conn.watchClient()
    }
  }

  forget(conn: Http1Connection): void {
    this.#open.delete(conn)
    const at = this.#idle.lastIndexOf(conn)
    if (at >= 0) this.#idle.splice(at, 1)
  }

  closeAll(): void {
    for (const conn of [...this.#open]) conn.close()
  }
}

export class Http1Agent {
  readonly #pools = new Map<string, EndpointPool>()
  readonly #maxIdle: number
  readonly #idleTicks: number
  readonly #connectTimeoutMs: number
  readonly #housekeepingMs: number
  readonly #preciseTimeoutBelowMs: number
  readonly clock = { tick: 0 }
  #housekeeping: Timer | undefined

  constructor(options: Http1AgentOptions = {}) {
    this.#maxIdle = options.maxIdlePerEndpoint ?? 256
    this.#housekeepingMs = options.housekeepingMs ?? 500
    this.#idleTicks = Math.max(1, Math.ceil((options.idleTimeoutMs ?? 60_000) / this.#housekeepingMs))
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000
    this.#preciseTimeoutBelowMs = options.preciseTimeoutBelowMs ?? PRECISE_TIMEOUT_BELOW_MS
  }

  pool(endpoint: Http1Endpoint): EndpointPool {
    let pool = this.#pools.get(endpoint.key)
    if (!pool) {
      pool = new EndpointPool(endpoint, this.#maxIdle, this.#idleTicks, this.clock, this.#preciseTimeoutBelowMs)
      this.#pools.set(endpoint.key, pool)
      this.#startHousekeeping()
    }
    return pool
  }

  #startHousekeeping(): void {
    if (this.#housekeeping) return
    this.#housekeeping = setInterval(() => {
      const tick = ++this.clock.tick
      const now = Date.now()
      for (const pool of this.#pools.values()) pool.sweep(tick, now)
    }, this.#housekeepingMs)
    // Housekeeping alone must not keep the process alive.
    this.#housekeeping.unref()
  }

  /**
   * Send one request. Never rejects: a failure resolves to an UpstreamError (cheaper than a
   * rejection on a path where 5xx mapping is ordinary control flow).
   */
  request(endpoint: Http1Endpoint, req: Http1Request, options: Http1RequestOptions = {}): Promise<Http1Response | UpstreamError> {
    const pool = this.pool(endpoint)
    const timeoutMs = options.timeoutMs ?? Infinity
    const exchange = new PendingExchange(req, timeoutMs === Infinity ? Infinity : Date.now() + timeoutMs, options.client, (fresh) => this.#dispatch(pool, exchange, fresh))
    this.#dispatch(pool, exchange, options.fresh === true)
    return exchange.promise
  }

  #dispatch(pool: EndpointPool, exchange: PendingExchange, fresh: boolean): void {
    exchange.attempts++
    const idle = fresh ? undefined : pool.takeIdle()
    if (idle) return idle.send(exchange)
    this.#connect(pool, exchange.deadline).then(
      (conn) => {
        if (!exchange.client?.signal.aborted) return conn.send(exchange)
        // The client left while we connected: keep the fresh connection for someone else.
        pool.release(conn)
        exchange.settle(new UpstreamError('aborted', 'request aborted'))
      },
      (err: UpstreamError) => exchange.settle(err),
    )
  }

  #connect(pool: EndpointPool, deadline: number): Promise<Http1Connection> {
    const { address, port } = pool.endpoint
    const conn = new Http1Connection(pool)
    return new Promise((resolve, reject) => {
      let settled = false
      const budget = Math.min(this.#connectTimeoutMs, deadline - Date.now())
      const timer = setTimeout(() => {
        settled = true
        reject(new UpstreamError('timeout', `connect to ${pool.endpoint.key} timed out`))
      }, Math.max(0, budget))
      Bun.connect<Http1Connection>({ hostname: address, port, data: conn, socket: HANDLERS }).then(
        (socket) => {
          clearTimeout(timer)
          // Requests are written whole; never let Nagle hold back the last segment of one.
          socket.setNoDelay(true)
          conn.attach(socket)
          if (settled) return conn.destroy()
          settled = true
          pool.track(conn)
          resolve(conn)
        },
        (err: unknown) => {
          clearTimeout(timer)
          if (settled) return
          settled = true
          const code = errorCode(err)
          // Refused (nothing listens) and other connect failures: the backend never saw the request → 502.
          reject(new UpstreamError('refused', `connect to ${pool.endpoint.key} failed: ${code}`, false, code))
        },
      )
    })
  }

  /** Close every pooled and busy connection (tests, shutdown). */
  closeAll(): void {
    for (const pool of this.#pools.values()) pool.closeAll()
    this.#pools.clear()
    clearInterval(this.#housekeeping)
    this.#housekeeping = undefined
  }

  stats(): { endpoint: string; open: number; idle: number }[] {
    return [...this.#pools.values()].map((p) => ({ endpoint: p.endpoint.key, open: p.openCount, idle: p.idleCount }))
  }
}

/** The agent's side of an exchange: one promise, and the stale-connection replay. */
class PendingExchange implements Exchange {
  attempts = 0
  readonly promise: Promise<Http1Response | UpstreamError>
  #resolve!: (outcome: Http1Response | UpstreamError) => void
  #settled = false

  constructor(
    readonly req: Http1Request,
    readonly deadline: number,
    readonly client: { readonly signal: AbortSignal } | undefined,
    private readonly retry: (fresh: boolean) => void,
  ) {
    this.promise = new Promise((resolve) => (this.#resolve = resolve))
  }

  get timeoutMs(): number {
    return this.deadline === Infinity ? Infinity : Math.max(0, this.deadline - Date.now())
  }

  settle(outcome: Http1Response | UpstreamError): void {
    if (this.#settled) return
    if (outcome instanceof UpstreamError && outcome.stale && this.attempts === 1 && isReplayable(this.req) && !this.client?.signal.aborted) {
      return this.retry(true)
    }
    this.#settled = true
    outcome.attempts = this.attempts
    this.#resolve(outcome)
  }
}

/** A body in hand (bytes or none) and a request that may be repeated (RFC 9110 §9.2.2). */
function isReplayable(req: Http1Request): boolean {
  return !(req.body instanceof ReadableStream) && replayableRequest(req.method, { has: (name) => hasField(req.headers, name) })
}

/** Whether "name: value\r\n" lines hold a field (lower-case `name`, matched case-insensitively). */
function hasField(lines: string, name: string): boolean {
  const lower = lines.toLowerCase()
  return lower.startsWith(`${name}:`) || lower.includes(`\n${name}:`)
}
