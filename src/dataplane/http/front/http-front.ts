/**
 * One plain-HTTP listener port: a Bun.listen socket server speaking HTTP/1.1 itself
 * (client-connection.ts), with a Bun.serve on loopback behind it for everything the front does
 * not forward on its own (filters, redirects, retries, mirrors, TLS and h2c backends,
 * WebSocket upgrades, h2c from clients).
 *
 * Why not Bun.serve on the public port: measured on Bun 1.4.5, a proxied small GET cost 24 µs of
 * CPU through Bun.serve + Request/Response objects and ~14 µs as bytes on Bun.listen; and
 * Bun.serve drops pipelined requests when its handler is async, answers 400 where HTTP says
 * 501, has a fixed header-read deadline without 408. Owning the parser fixes all of these.
 */
import type { Server, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from 'bun'
import { routedEndpoints, type ActiveSnapshot, type Plan } from '../../snapshot.ts'
import type { EndpointRegistry } from '../../upstream/registry.ts'
import type { Logger } from '../../log.ts'
import type { HttpLimits } from '../limits.ts'
import type { TlsPeer } from '../tls/generation.ts'
import { ClientConnection } from './client-connection.ts'
import type { FrontContext } from './context.ts'
import type { LinkPools } from './links.ts'

export interface HttpFrontOptions {
  readonly irPort: number
  readonly hostname: string
  readonly reusePort: boolean
  readonly active: ActiveSnapshot
  readonly registry: EndpointRegistry
  readonly links: LinkPools
  readonly limits: HttpLimits
  readonly logger: Logger
  /** Start the inner Bun.serve (loopback, port 0) with the data plane's request pipeline. */
  readonly serveInner: (peerOf: (peerPort: number | undefined) => TlsPeer | undefined) => Server<undefined>
}

/** Timeouts are checked this often: their precision. */
const SWEEP_MS = 100

// Each handler catches for itself: a wrapper taking a closure would allocate one per event.
const HANDLERS: SocketHandler<ClientConnection> = {
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
    socket.data?.onClose()
  },
  error(socket) {
    socket.data?.onClose()
  },
  end(socket) {
    try {
      socket.data.onEnd()
    } catch (err) {
      failed(socket.data, err)
    }
  },
}

/** A bug in request handling costs one connection, never the process. */
function failed(conn: ClientConnection | undefined, err: unknown): void {
  conn?.onFailure(err)
}

export class HttpFront {
  readonly #ctx: FrontContext
  readonly #listener: TCPSocketListener<ClientConnection>
  readonly #inner: Server<undefined>
  readonly #sweep: Timer
  readonly #connections = new Set<ClientConnection>()

  private constructor(options: HttpFrontOptions) {
    const peers = new Map<number, TlsPeer>()
    const connections = this.#connections
    let inner: Server<undefined> | undefined
    const ctx: FrontContext = {
      irPort: options.irPort,
      active: options.active,
      registry: options.registry,
      links: options.links,
      limits: options.limits,
      logger: options.logger,
      clock: { now: Date.now() },
      connections: connections as Set<{ sweep(now: number): void }>,
      peers,
      innerPort: () => inner!.port!,
      draining: false,
      inFlight: 0,
    }
    this.#ctx = ctx
    inner = options.serveInner((peerPort) => (peerPort === undefined ? undefined : peers.get(peerPort)))
    this.#inner = inner
    try {
      // Bun.listen honours reusePort at runtime (verified in 1.4.5) but its types omit it. Half-open:
      // a client may send its request and shut its side; the answer still has to reach it.
      const listenOptions: TCPSocketListenOptions<ClientConnection> & { reusePort?: boolean; allowHalfOpen?: boolean } = {
        hostname: options.hostname,
        port: options.irPort,
        reusePort: options.reusePort,
        allowHalfOpen: true,
        socket: {
          ...HANDLERS,
          open(socket) {
            socket.setNoDelay(true)
            const conn = new ClientConnection(socket, ctx)
            socket.data = conn
            connections.add(conn)
            if (ctx.draining) conn.drain()
          },
        },
      }
      this.#listener = Bun.listen<ClientConnection>(listenOptions)
    } catch (err) {
      void inner.stop(true)
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
    let routed: Map<string, Set<string>> | undefined
    for (const conn of [...this.#connections]) {
      if (!conn.isLongLived) continue
      const port = plan.ports.get(this.#ctx.irPort)
      routed ??= port ? routedEndpoints(port, plan) : new Map()
      conn.onPlan(routed)
    }
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
    for (const conn of [...this.#connections]) (force ? conn.forceClose() : conn.drain())
    const deadline = Date.now() + (force ? 0 : graceMs)
    while (this.#connections.size > 0 && Date.now() < deadline) await Bun.sleep(20)
    for (const conn of [...this.#connections]) conn.forceClose()
    clearInterval(this.#sweep)
    await this.#inner.stop(true)
  }
}

