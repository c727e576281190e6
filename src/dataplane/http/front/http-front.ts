/**
 * One plain-HTTP listener port: a Bun.listen socket server speaking HTTP/1.1 itself
 * (client-connection.ts), with a Bun.serve on loopback behind it for everything the front does
 * not forward on its own (filters, redirects, retries, mirrors, TLS and h2c backends,
 * WebSocket upgrades), and the h2 server (dataplane/http2) for h2c prior-knowledge clients.
 *
 * Why not Bun.serve on the public port: measured on Bun 1.4.5, a proxied small GET cost 24 µs of
 * CPU through Bun.serve + Request/Response objects and ~14 µs as bytes on Bun.listen; and
 * Bun.serve drops pipelined requests when its handler is async, answers 400 where HTTP says
 * 501, has a fixed header-read deadline without 408. Owning the parser fixes all of these.
 */
import type { Server, Socket, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from 'bun'
import { routedEndpoints, type ActiveSnapshot, type Plan } from '../../snapshot.ts'
import type { EndpointRegistry } from '../../upstream/registry.ts'
import type { Logger } from '../../log.ts'
import { portLimits, type HttpLimits } from '../limits.ts'
import type { ConnectionSettings } from '../../../policy/kind.ts'
import { ProxyHeaderReader } from '../../proxy-protocol.ts'
import type { TlsPeer } from '../tls/peer.ts'
import { ClientConnection } from './client-connection.ts'
import type { FrontContext } from './context.ts'
import type { LinkPools } from './links.ts'
import type { ConnectionGate } from '../../overload/connection-gate.ts'
import type { LoadShedder } from '../../overload/load-shedder.ts'
import type { TlsContexts } from '../tls/contexts.ts'
import { TlsHandshake } from './tls-handshake.ts'

export interface HttpFrontOptions {
  readonly irPort: number
  readonly hostname: string
  readonly reusePort: boolean
  readonly active: ActiveSnapshot
  readonly registry: EndpointRegistry
  readonly links: LinkPools
  readonly limits: HttpLimits
  readonly logger: Logger
  /** The data plane's connection admission (caps per worker, per client, accept rate). */
  readonly gate: ConnectionGate
  readonly shedder: LoadShedder
  /** HTTPS: the port's TLS contexts; the front terminates TLS itself (tls-handshake.ts). */
  readonly tls?: TlsContexts
  /** Start the inner Bun.serve (loopback, port 0) with the data plane's request pipeline. */
  readonly serveInner: (peerOf: (peerPort: number | undefined) => TlsPeer | undefined) => Server<undefined>
  /** Start the h2 server (dataplane/http2/server.ts) that h2c prior-knowledge connections are spliced to; absent: the inner Bun.serve. */
  readonly serveH2?: (peerOf: (peerPort: number | undefined) => TlsPeer | undefined) => { readonly port: number; stop(force?: boolean): Promise<void> }
}

/** Timeouts are checked this often: their precision. */
const SWEEP_MS = 100

// Each handler catches for itself: a wrapper taking a closure would allocate one per event.
const HANDLERS: SocketHandler<FrontSocketData> = {
  data(socket, data) {
    try {
      socket.data.onData(data)
    } catch (err) {
      failed(socket.data, err)
    }
  },
  drain(socket) {
    try {
      socket.data.onDrain()
    } catch (err) {
      failed(socket.data, err)
    }
  },
  close(socket) {
    closed(socket.data)
  },
  error(socket) {
    closed(socket.data)
  },
  end(socket) {
    try {
      socket.data.onEnd()
    } catch (err) {
      failed(socket.data, err)
    }
  },
}

/** Close and error both end a socket: the connection's slot in the gate is given back once. */
function closed(conn: FrontSocketData | undefined): void {
  if (conn === undefined) return
  const ip = conn.admitted
  if (ip !== undefined) {
    conn.admitted = undefined
    conn.ctx.gate.release(ip)
  }
  conn.onClose()
}

/** A bug in request handling costs one connection, never the process. */
function failed(conn: FrontSocketData | undefined, err: unknown): void {
  conn?.onFailure(err)
}

/** What a front socket carries: its HTTP connection, or the PROXY header reader before it. */
type FrontSocketData = ClientConnection | ProxyPreamble | TlsHandshake

/** How long a PROXY protocol header may take when the port sets no header timeout. */
const PROXY_HEADER_TIMEOUT_MS = 10_000

/**
 * A connection on a PROXY protocol port until its header is read (ClientTrafficPolicy
 * proxyProtocol). Only such ports create one, so other ports never look at their first bytes.
 * Then the socket's data becomes a ClientConnection whose client address is the header's
 * source: it reaches X-Forwarded-For and Forwarded on the direct path and the inner pipeline
 * through ctx.peers. A missing or malformed header closes the connection without an answer.
 */
class ProxyPreamble {
  readonly isLongLived = false
  /** The peer address this connection holds a gate slot for (ConnectionGate), until released. */
  admitted: string | undefined
  readonly #reader: ProxyHeaderReader
  readonly #deadline: number
  #done = false

  constructor(
    readonly socket: Socket<FrontSocketData>,
    readonly ctx: FrontContext,
    optional: boolean,
    readonly connections: Set<FrontSocketData>,
  ) {
    this.#reader = new ProxyHeaderReader(optional)
    this.#deadline = Date.now() + (ctx.limits.headerTimeoutMs > 0 ? ctx.limits.headerTimeoutMs : PROXY_HEADER_TIMEOUT_MS)
  }

  onData(data: Uint8Array): void {
    if (this.#done) return
    const result = this.#reader.feed(data)
    if (result.kind === 'incomplete') return
    if (result.kind === 'invalid') return this.#refuse(result.reason)
    this.#done = true
    const ctx = this.ctx
    const conn = new ClientConnection(this.socket as Socket<ClientConnection>, ctx, result.header?.addresses?.sourceAddress)
    // The gate counted the proxy's address: that slot stays with the socket.
    conn.admitted = this.admitted
    this.admitted = undefined
    this.socket.data = conn
    this.connections.delete(this)
    this.connections.add(conn)
    if (ctx.draining) conn.drain()
    if (result.rest.byteLength > 0) conn.onData(result.rest)
  }

  onDrain(): void {}

  onEnd(): void {
    this.#refuse('connection ended before the PROXY protocol header')
  }

  onClose(): void {
    this.#done = true
    this.connections.delete(this)
  }

  onFailure(err: unknown): void {
    this.ctx.logger.error('http front: connection failed', { port: this.ctx.irPort, error: err instanceof Error ? err.message : String(err) })
    this.forceClose()
  }

  onPlan(): void {}

  sweep(now: number): void {
    if (now > this.#deadline) this.#refuse('PROXY protocol header timeout')
  }

  drain(): void {
    this.forceClose()
  }

  forceClose(): void {
    this.onClose()
    this.socket.end()
  }

  #refuse(reason: string): void {
    this.ctx.logger.debug('http front: connection refused', { port: this.ctx.irPort, reason, client: this.socket.remoteAddress })
    this.forceClose()
  }
}

export class HttpFront {
  readonly #ctx: FrontContext
  readonly #listener: TCPSocketListener<FrontSocketData>
  readonly #inner: Server<undefined>
  readonly #h2: { readonly port: number; stop(force?: boolean): Promise<void> } | undefined
  readonly #sweep: Timer
  readonly #connections = new Set<FrontSocketData>()
  readonly #baseLimits: HttpLimits
  /** The port's ClientTrafficPolicy settings as of the last plan (read at each accept). */
  #settings: ConnectionSettings | undefined
  /** HTTPS: the contexts new connections get (a rotation replaces them; open connections keep theirs). */
  #tls: TlsContexts | undefined

  private constructor(options: HttpFrontOptions) {
    this.#tls = options.tls
    const tlsSource = { current: () => this.#tls! }
    const peers = new Map<number, TlsPeer>()
    const connections = this.#connections
    let inner: Server<undefined> | undefined
    this.#baseLimits = options.limits
    this.#settings = options.active.current?.ports.get(options.irPort)?.ir.connection
    const ctx: FrontContext = {
      irPort: options.irPort,
      scheme: options.tls ? 'https' : 'http',
      active: options.active,
      registry: options.registry,
      links: options.links,
      limits: portLimits(options.limits, this.#settings),
      lateResponseHeaders: this.#settings?.lateResponseHeaders,
      logger: options.logger,
      clock: { now: Date.now() },
      connections: connections as Set<{ sweep(now: number): void }>,
      peers,
      innerPort: () => inner!.port!,
      draining: false,
      inFlight: 0,
      gate: options.gate.forListener(options.irPort),
      shedder: options.shedder,
    }
    this.#ctx = ctx
    const peerOf = (peerPort: number | undefined) => (peerPort === undefined ? undefined : peers.get(peerPort))
    inner = options.serveInner(peerOf)
    this.#inner = inner
    const h2 = options.serveH2?.(peerOf)
    this.#h2 = h2
    // Only ports that can carry gRPC pay for node:http2; the others' h2 stays on the inner Bun.serve.
    if (h2) ctx.h2Port = () => (options.active.current?.ports.get(options.irPort)?.servesGrpc ? h2.port : undefined)
    try {
      // Bun.listen honours reusePort at runtime (verified in 1.4.5) but its types omit it. Half-open:
      // a client may send its request and shut its side; the answer still has to reach it.
      const listenOptions: TCPSocketListenOptions<FrontSocketData> & { reusePort?: boolean; allowHalfOpen?: boolean } = {
        hostname: options.hostname,
        port: options.irPort,
        reusePort: options.reusePort,
        allowHalfOpen: true,
        socket: {
          ...HANDLERS,
          open: (socket) => {
            const settings = this.#settings
            // Counted for the whole process (all workers): over a cap the socket is closed before
            // anything is read or allocated for it; established ones are untouched.
            const ip = socket.remoteAddress
            if (ctx.gate.admit(ip, settings?.maxConnections) !== undefined) {
              socket.terminate()
              return
            }
            socket.setNoDelay(true)
            if (this.#tls) {
              // HTTPS: PROXY header (if asked), ClientHello, then TLS on this socket (tls-handshake.ts).
              const handshake = new TlsHandshake(socket as Socket<unknown>, ctx, tlsSource, settings?.proxyProtocol?.optional, connections as Set<unknown>)
              handshake.admitted = ip
              socket.data = handshake
              connections.add(handshake)
              if (ctx.draining) handshake.drain()
              return
            }
            if (settings?.proxyProtocol) {
              const preamble = new ProxyPreamble(socket, ctx, settings.proxyProtocol.optional, connections)
              preamble.admitted = ip
              socket.data = preamble
              connections.add(preamble)
              if (ctx.draining) preamble.drain()
              return
            }
            // The address string once per connection (each remoteAddress read makes a new one).
            const conn = new ClientConnection(socket as Socket<ClientConnection>, ctx, ip)
            conn.admitted = ip
            socket.data = conn
            connections.add(conn)
            if (ctx.draining) conn.drain()
          },
        },
      }
      this.#listener = Bun.listen<FrontSocketData>(listenOptions)
    } catch (err) {
      void inner.stop(true)
      void h2?.stop(true)
      throw err
    }
    this.#sweep = setInterval(() => {
      const now = Date.now()
      ctx.clock.now = now
      for (const conn of connections) conn.sweep(now)
    }, SWEEP_MS)
    this.#sweep.unref()
  }

  /** The front, or the bind error as a message. */
  static start(options: HttpFrontOptions): HttpFront | string {
    try {
      return new HttpFront(options)
    } catch (err) {
      return err instanceof Error ? err.message : String(err)
    }
  }

  get port(): number {
    return this.#listener.port
  }

  /** A new plan is live (HttpDataplane.applyPlan): tunnels and streams whose route is gone end. */
  onPlan(plan: Plan): void {
    const settings = plan.ports.get(this.#ctx.irPort)?.ir.connection
    if (settings !== this.#settings) {
      // PROXY protocol and the connection limit apply from the next accept; open connections follow the new timeouts from their next sweep.
      this.#settings = settings
      ;(this.#ctx as { limits: HttpLimits }).limits = portLimits(this.#baseLimits, settings)
      this.#ctx.lateResponseHeaders = settings?.lateResponseHeaders
    }
    let routed: Map<string, Set<string>> | undefined
    for (const conn of [...this.#connections]) {
      if (!conn.isLongLived) continue
      const port = plan.ports.get(this.#ctx.irPort)
      routed ??= port ? routedEndpoints(port, plan) : new Map()
      conn.onPlan(routed)
    }
  }

  /** HTTPS: new certificates (or TLS settings) for connections from now on; open ones keep theirs. */
  setTls(contexts: TlsContexts): void {
    this.#tls = contexts
  }

  /** Connections open on the public port (tests, admin). */
  get connectionCount(): number {
    return this.#connections.size
  }

  /**
   * Stop accepting; idle connections close at once, busy ones after their exchange, and
   * whatever is still open after `graceMs` is cut. `force` cuts everything now.
   */
  async stop(force = false, graceMs = 10_000): Promise<void> {
    const ctx = this.#ctx
    ctx.draining = true
    this.#listener.stop(false)
    // h2 clients get GOAWAY now: no new streams, open ones finish within the grace period.
    void this.#h2?.stop(force)
    for (const conn of [...this.#connections]) (force ? conn.forceClose() : conn.drain())
    const deadline = Date.now() + (force ? 0 : graceMs)
    while (this.#connections.size > 0 && Date.now() < deadline) await Bun.sleep(20)
    for (const conn of [...this.#connections]) conn.forceClose()
    clearInterval(this.#sweep)
    await Promise.all([this.#inner.stop(true), this.#h2?.stop(true)])
  }
}

