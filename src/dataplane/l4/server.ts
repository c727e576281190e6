/**
 * The L4 data plane: TCPRoute, UDPRoute and TLSRoute (passthrough and terminate) ports.
 *
 * apply() compiles the snapshot into a plan and swaps it in one assignment; accept handlers read
 * it once per connection. Listener sockets are opened or closed only when the set of ports (or
 * the kind of socket a port needs) changes; route changes never touch listener sockets.
 *
 * Open TCP/TLS connections and UDP sessions keep the route and endpoint they started with across
 * swaps, unless the swap removes that route from their port (by route id), that endpoint from
 * the route's backends, or the port itself: then TCP/TLS connections end both sides cleanly (what
 * is queued is written, then FIN) and UDP sessions are dropped. Checked once per swap.
 */
import type { TCPSocketListener } from 'bun'
import type { Snapshot } from '../../ir/types.ts'
import type { Logger } from '../log.ts'
import { EndpointRegistry } from '../upstream/registry.ts'
import type { ProxyConnection } from './connection.ts'
import { compileL4, EMPTY_PLAN, listenerKey, listenerKind, type L4Plan, type ListenerKind, type PortPlan } from './plan.ts'
import { listenStream } from './tcp.ts'
import { CertificateCache } from './tls-contexts.ts'
import { TerminateListener } from './tls-terminate.ts'
import { DEFAULT_UDP_OPTIONS, UdpListener, type UdpOptions } from './udp.ts'

export interface L4DataplaneOptions {
  readonly logger: Logger
  /** Address the listeners bind to; default all IPv4 interfaces. */
  readonly hostname?: string
  /** Endpoint state (in-flight counts, passive health). Default: a registry of its own. */
  readonly registry?: EndpointRegistry
  /** Backend connect timeout for TCP and TLS (default 10 s). */
  readonly connectTimeoutMs?: number
  /**
   * TCP and TLS connections with no byte either way for this long are closed (default 1 h, as
   * Envoy's tcp_proxy idle_timeout; 0 = never). Closed within a quarter of it (at most 15 s) late.
   */
  readonly tcpIdleTimeoutMs?: number
  readonly udp?: Partial<UdpOptions>
  /** Bind TCP/TLS-passthrough ports with SO_REUSEPORT so several workers can share them. */
  readonly reusePort?: boolean
}

export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000

export interface L4Stats {
  readonly listeners: number
  readonly tcpConnections: number
  readonly udpSessions: number
  readonly udpDropped: number
}

type OpenListener =
  | { readonly kind: 'stream'; readonly port: number; readonly socket: TCPSocketListener<ProxyConnection> }
  | { readonly kind: 'terminate'; readonly port: number; readonly socket: TerminateListener }
  | { readonly kind: 'udp'; readonly port: number; readonly socket: UdpListener }

export class L4Dataplane {
  readonly #logger: Logger
  readonly #hostname: string
  readonly #registry: EndpointRegistry
  readonly #connectTimeoutMs: number
  readonly #tcpIdleTimeoutMs: number
  /** One sweep for all TCP connections instead of a timer per connection re-armed per chunk. */
  #idleSweeper: ReturnType<typeof setInterval> | undefined
  /** Its period (0: none), from the shortest idle timeout of the global one and the ports'. */
  #sweepEvery = 0
  readonly #udpOptions: UdpOptions
  readonly #reusePort: boolean
  readonly #certificates = new CertificateCache()
  readonly #listeners = new Map<string, OpenListener>()
  readonly #live = new Set<ProxyConnection>()
  /** Terminate listeners removed from the plan whose connections are still finishing. */
  readonly #draining = new Set<TerminateListener>()
  #plan: L4Plan = EMPTY_PLAN
  /** Applies run one at a time, in call order: opening sockets is async. */
  #queue: Promise<unknown> = Promise.resolve()
  #stopped = false

  constructor(opts: L4DataplaneOptions) {
    this.#logger = opts.logger
    this.#hostname = opts.hostname ?? '0.0.0.0'
    this.#registry = opts.registry ?? new EndpointRegistry()
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 10_000
    this.#tcpIdleTimeoutMs = opts.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS
    this.#scheduleSweep(EMPTY_PLAN)
    this.#udpOptions = { ...DEFAULT_UDP_OPTIONS, ...opts.udp }
    this.#reusePort = opts.reusePort ?? false
  }

  /** Make `snapshot` live. Never throws: compile issues and bind failures come back as problems. */
  apply(snapshot: Snapshot): Promise<{ problems: string[]; failedPorts?: number[] }> {
    const run = this.#queue.then(() => this.#apply(snapshot))
    this.#queue = run.catch(() => undefined)
    return run.catch((error: unknown) => ({ problems: [`l4: apply failed: ${(error as Error).message}`] }))
  }

  /** Close every listener, connection and UDP session. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#idleSweeper)
    await this.#queue
    this.#plan = EMPTY_PLAN
    const closing: Promise<void>[] = []
    for (const [key, listener] of this.#listeners) {
      closing.push(this.#close(listener, true))
      this.#listeners.delete(key)
    }
    for (const connection of this.#live) connection.close()
    for (const listener of this.#draining) closing.push(listener.close(true))
    await Promise.all(closing)
  }

  /** Ports with an open listener, as "tcp:<port>" / "udp:<port>". */
  listening(): string[] {
    return [...this.#listeners.keys()]
  }

  stats(): L4Stats {
    let udpSessions = 0
    let udpDropped = 0
    for (const listener of this.#listeners.values()) {
      if (listener.kind !== 'udp') continue
      udpSessions += listener.socket.sessionCount
      udpDropped += listener.socket.dropped
    }
    return { listeners: this.#listeners.size, tcpConnections: this.#live.size, udpSessions, udpDropped }
  }

  #sweepIdle(): void {
    const now = Date.now()
    for (const connection of this.#live) {
      // The port's ClientTrafficPolicy idle timeout as of the connection's accept, else the global one.
      const idleMs = connection.portPlan.connection?.idleTimeoutMs ?? this.#tcpIdleTimeoutMs
      if (idleMs > 0) connection.sweepIdle(now, idleMs)
    }
  }

  /** Sweep often enough for the shortest idle timeout in force (closed at most a quarter of it late, and at most 15 s). */
  #scheduleSweep(plan: L4Plan): void {
    let shortest = this.#tcpIdleTimeoutMs > 0 ? this.#tcpIdleTimeoutMs : Infinity
    for (const port of plan.ports.values()) {
      const idleMs = port.connection?.idleTimeoutMs
      if (idleMs !== undefined && idleMs > 0 && idleMs < shortest) shortest = idleMs
    }
    const every = shortest === Infinity ? 0 : Math.min(15_000, Math.max(25, shortest / 4))
    if (every === this.#sweepEvery) return
    clearInterval(this.#idleSweeper)
    this.#idleSweeper = undefined
    this.#sweepEvery = every
    if (every === 0) return
    this.#idleSweeper = setInterval(() => this.#sweepIdle(), every)
    this.#idleSweeper.unref()
  }

  async #apply(snapshot: Snapshot): Promise<{ problems: string[]; failedPorts: number[] }> {
    if (this.#stopped) return { problems: ['l4: data plane is stopped'], failedPorts: [] }
    const { plan, problems } = compileL4(snapshot, this.#registry, this.#certificates)
    this.#plan = plan
    this.#scheduleSweep(plan)
    const failedPorts: number[] = []
    /** Connections and UDP sessions this swap closes, for one log line. */
    let closedBySwap = 0

    // Close first, so a port that changes kind (TCP <-> TLS terminate) can be bound again.
    for (const [key, listener] of this.#listeners) {
      const wanted = plan.ports.get(key)
      if (wanted && listenerKind(wanted.mode) === listener.kind) continue
      this.#listeners.delete(key)
      // Its connections end too: terminate ones cleanly here, UDP sessions with the socket, stream ones in #closeRemoved.
      if (listener.kind === 'terminate') closedBySwap += listener.socket.reconcile(undefined)
      if (listener.kind === 'udp') closedBySwap += listener.socket.sessionCount
      void this.#close(listener, false)
      this.#logger.info('l4: listener closed', { key })
    }
    closedBySwap += this.#closeRemoved(plan)

    for (const [key, portPlan] of plan.ports) {
      const existing = this.#listeners.get(key)
      if (existing) {
        if (existing.kind === 'udp') closedBySwap += existing.socket.reconcile()
        if (existing.kind === 'terminate') {
          existing.socket.refresh()
          closedBySwap += existing.socket.reconcile(portPlan)
        }
        continue
      }
      try {
        this.#listeners.set(key, await this.#open(key, portPlan))
        this.#logger.info('l4: listener open', { key, mode: portPlan.mode })
      } catch (error) {
        const message = `l4: cannot listen on ${this.#hostname}:${portPlan.port} (${portPlan.mode}): ${(error as Error).message}`
        problems.push(message)
        failedPorts.push(portPlan.port)
        this.#logger.error(message, { code: (error as { code?: string }).code })
      }
    }
    this.#certificates.sweep()
    if (closedBySwap > 0) {
      this.#logger.info('l4: closed connections whose route or backend left the plan', { revision: plan.revision, closed: closedBySwap })
    }
    return { problems, failedPorts }
  }

  /** Ends TCP and TLS-passthrough connections (every stream listener's, removed ones' included) the plan no longer routes; returns how many. */
  #closeRemoved(plan: L4Plan): number {
    let closed = 0
    for (const connection of this.#live) {
      const port = plan.ports.get(listenerKey(connection.portPlan.mode, connection.portPlan.port))
      if (!connection.onPlan(port)) closed++
    }
    return closed
  }

  async #open(key: string, portPlan: PortPlan): Promise<OpenListener> {
    const currentPlan = () => this.#plan.ports.get(key)
    const common = { hostname: this.#hostname, port: portPlan.port, currentPlan }
    const kind: ListenerKind = listenerKind(portPlan.mode)
    if (kind === 'udp') {
      const socket = await UdpListener.listen({ ...common, ...this.#udpOptions, logger: this.#logger })
      return { kind, port: portPlan.port, socket }
    }
    if (kind === 'terminate') {
      const socket = await TerminateListener.listen({
        ...common,
        logger: this.#logger,
        registry: this.#registry,
        connectTimeoutMs: this.#connectTimeoutMs,
        idleTimeoutMs: this.#tcpIdleTimeoutMs,
      })
      return { kind, port: portPlan.port, socket }
    }
    const deps = { logger: this.#logger, registry: this.#registry, connectTimeoutMs: this.#connectTimeoutMs, live: this.#live, open: { count: 0 } }
    return { kind, port: portPlan.port, socket: listenStream({ ...common, deps, reusePort: this.#reusePort }) }
  }

  async #close(listener: OpenListener, closeActive: boolean): Promise<void> {
    try {
      if (listener.kind === 'stream') listener.socket.stop(closeActive)
      else if (listener.kind === 'udp') listener.socket.close()
      else {
        this.#draining.add(listener.socket)
        await listener.socket.close(closeActive)
        this.#draining.delete(listener.socket)
      }
    } catch (error) {
      this.#logger.warn('l4: error closing listener', { port: listener.port, error: (error as Error).message })
    }
  }
}
