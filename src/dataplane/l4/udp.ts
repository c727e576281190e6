/**
 * UDPRoute: one Bun.udpSocket per port and, per client address:port, a session with its own
 * connected socket towards the chosen backend, so each reply finds its way back to the client
 * that caused it. Sessions end after an idle period; the table is bounded, oldest evicted first.
 *
 * UDP has no backpressure: a send the kernel refuses is a drop, counted and otherwise ignored.
 */
import type { udp } from 'bun'
import { requestMetrics, type StreamCounters } from '../../telemetry/request-metrics.ts'
import { logStream, telemetry } from '../../telemetry/observe.ts'
import type { Logger } from '../log.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import { survives, type CompiledRoute, type PortPlan } from './plan.ts'

export interface UdpOptions {
  /** A session with no datagram either way for this long is closed. */
  readonly idleTimeoutMs: number
  /** Beyond this many sessions the least recently active one is evicted. */
  readonly maxSessions: number
}

export const DEFAULT_UDP_OPTIONS: UdpOptions = { idleTimeoutMs: 60_000, maxSessions: 16_384 }

export interface UdpListenerOptions extends UdpOptions {
  readonly hostname: string
  readonly port: number
  readonly currentPlan: () => PortPlan | undefined
  readonly logger: Logger
}

/** Datagrams held per session while its backend socket is being created. */
const MAX_PENDING_DATAGRAMS = 64
/** Re-insert an active session in the table at most this often, to keep eviction order ~LRU cheaply. */
const TOUCH_REORDER_MS = 1_000

interface UdpSession {
  readonly key: string
  readonly clientAddress: string
  readonly clientPort: number
  readonly route: CompiledRoute
  readonly member: PoolMember
  backend: udp.ConnectedSocket<'uint8array'> | undefined
  pending: Uint8Array[]
  lastActive: number
  closed: boolean
  /** Telemetry: bytes each way, start, and the counters it is counted in. */
  bytesIn: number
  bytesOut: number
  readonly startMs: number
  readonly backendKey: string
  counters: StreamCounters | undefined
}

export class UdpListener {
  readonly #sessions = new Map<string, UdpSession>()
  readonly #sweeper: ReturnType<typeof setInterval>
  #socket!: udp.Socket<'uint8array'>
  /** Datagrams the kernel refused (send returned false) or that had nowhere to go. */
  dropped = 0

  private constructor(private readonly options: UdpListenerOptions) {
    const every = Math.max(50, Math.min(options.idleTimeoutMs / 2, 5_000))
    this.#sweeper = setInterval(() => this.#expireIdle(), every)
    this.#sweeper.unref()
  }

  /** Rejects when the port cannot be bound. */
  static async listen(options: UdpListenerOptions): Promise<UdpListener> {
    const listener = new UdpListener(options)
    try {
      listener.#socket = await Bun.udpSocket({
        hostname: options.hostname,
        port: options.port,
        binaryType: 'uint8array',
        socket: {
          data: (_socket, datagram, port, address) => listener.#fromClient(datagram, port, address),
          // Bun may report an error without an Error (seen when a backend's socket closed: ICMP port unreachable); a throw here kills the worker.
          error: (_socket, error) => options.logger.debug('l4: udp listener error', { port: options.port, error: errorText(error) }),
        },
      })
    } catch (error) {
      clearInterval(listener.#sweeper)
      throw error
    }
    return listener
  }

  get sessionCount(): number {
    return this.#sessions.size
  }

  /**
   * After a snapshot swap, keep a session only while its route (by id) is still on the port and
   * its endpoint is still among that route's backends; the others are dropped, so the client's
   * next datagram opens a session on the new plan. A route that stays but no longer leads the port
   * keeps its sessions (new ones go to the new lead). Returns how many were dropped.
   */
  reconcile(): number {
    const port = this.options.currentPlan()
    let dropped = 0
    for (const session of this.#sessions.values()) {
      if (survives(port, session.route.id, session.member.state.key)) continue
      this.#end(session)
      dropped++
    }
    return dropped
  }

  close(): void {
    clearInterval(this.#sweeper)
    for (const session of this.#sessions.values()) this.#end(session)
    this.#socket.close()
  }

  #fromClient(datagram: Uint8Array, clientPort: number, clientAddress: string): void {
    const key = `${clientAddress}:${clientPort}`
    const now = Date.now()
    let session = this.#sessions.get(key)
    if (session) {
      if (now - session.lastActive > TOUCH_REORDER_MS) {
        this.#sessions.delete(key)
        this.#sessions.set(key, session)
      }
      session.lastActive = now
    } else {
      session = this.#open(key, clientAddress, clientPort, now)
      if (!session) {
        this.dropped++
        return
      }
    }
    session.bytesIn += datagram.byteLength
    if (session.backend) {
      if (!session.backend.send(datagram)) this.dropped++
    } else if (session.pending.length < MAX_PENDING_DATAGRAMS) {
      session.pending.push(datagram)
    } else {
      this.dropped++
    }
  }

  #open(key: string, clientAddress: string, clientPort: number, now: number): UdpSession | undefined {
    // UDPRoute: only the first (oldest) route on a port receives traffic.
    const route = this.options.currentPlan()?.routes[0]
    if (!route) return undefined
    const choice = route.backends.choose(clientAddress)
    if (choice.kind === 'reject') {
      this.options.logger.debug('l4: udp datagram rejected', { port: this.options.port, route: route.id, reason: choice.reason })
      return undefined
    }
    if (this.#sessions.size >= this.options.maxSessions) {
      const oldest = this.#sessions.values().next().value
      if (oldest) this.#end(oldest)
    }
    const session: UdpSession = {
      key,
      clientAddress,
      clientPort,
      route,
      member: choice.member,
      backend: undefined,
      pending: [],
      lastActive: now,
      closed: false,
      bytesIn: 0,
      bytesOut: 0,
      startMs: now,
      backendKey: choice.pool.ir.key,
      counters: telemetry.metrics ? requestMetrics.stream('udp', `port="${this.options.port}",route="${route.owner.namespace}/${route.owner.name}",backend="${choice.pool.ir.key}"`) : undefined,
    }
    if (session.counters) session.counters.opened++
    this.#sessions.set(key, session)
    choice.member.state.inFlight++
    void this.#connectBackend(session)
    return session
  }

  async #connectBackend(session: UdpSession): Promise<void> {
    const { address, port } = session.member.state
    try {
      const backend = await Bun.udpSocket({
        hostname: address.includes(':') ? '::' : '0.0.0.0',
        binaryType: 'uint8array',
        connect: { hostname: address, port },
        socket: {
          data: (_socket, reply) => {
            session.lastActive = Date.now()
            session.bytesOut += reply.byteLength
            if (!this.#socket.send(reply, session.clientPort, session.clientAddress)) this.dropped++
          },
          error: (_socket, error) => this.options.logger.debug('l4: udp backend error', { endpoint: session.member.state.key, error: errorText(error) }),
        },
      })
      if (session.closed) {
        backend.close()
        return
      }
      session.backend = backend
      for (const datagram of session.pending) if (!backend.send(datagram)) this.dropped++
      session.pending = []
    } catch (error) {
      this.options.logger.debug('l4: udp backend socket failed', { endpoint: session.member.state.key, error: (error as Error).message })
      this.dropped += session.pending.length
      this.#end(session)
    }
  }

  #expireIdle(): void {
    const cutoff = Date.now() - this.options.idleTimeoutMs
    for (const session of this.#sessions.values()) if (session.lastActive < cutoff) this.#end(session)
  }

  #end(session: UdpSession): void {
    if (session.closed) return
    session.closed = true
    session.member.state.inFlight--
    const counters = session.counters
    if (counters) {
      counters.closed++
      counters.bytesIn += session.bytesIn
      counters.bytesOut += session.bytesOut
    }
    if (telemetry.log) logStream({ type: 'udp', startMs: session.startMs, clientIp: session.clientAddress, bytesIn: session.bytesIn, bytesOut: session.bytesOut, route: `${session.route.owner.namespace}/${session.route.owner.name}`, backend: session.backendKey, endpoint: session.member.state.key })
    session.pending = []
    session.backend?.close()
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key)
  }
}

/** An error handler's argument as text, whatever Bun passed (found by bench/soak.ts: undefined crashed a worker). */
function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
