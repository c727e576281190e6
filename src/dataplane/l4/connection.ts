/**
 * One proxied TCP connection (plain TCP or TLS passthrough): the client socket, the backend
 * connect with timeout, refused connects tried on the pool's other endpoints (each once), and
 * the splice between them.
 */
import type { Socket, SocketHandler } from 'bun'
import type { Logger } from '../log.ts'
import { buildProxyHeader, ProxyHeaderReader, type ProxyEndpoints } from '../proxy-protocol.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import { retryChoice } from './backends.ts'
import type { EndpointRegistry } from '../upstream/registry.ts'
import { listenerKind, liveRoutes, type CompiledRoute, type PortPlan } from './plan.ts'
import { Splice } from './splice.ts'
import { requestMetrics, type StreamCounters } from '../../telemetry/request-metrics.ts'
import { logStream, telemetry } from '../../telemetry/observe.ts'

export interface StreamDeps {
  readonly logger: Logger
  readonly registry: EndpointRegistry
  readonly connectTimeoutMs: number
  /** Open connections, so stop() can close the ones whose listener is already gone. */
  readonly live: Set<ProxyConnection>
  /** Open connections of this listener (its maxConnections count); each one gives its slot back once. */
  readonly open: { count: number }
}

/** How long a connection ended by a swap may take to write what is queued and see both FINs before it is cut. */
export const REMOVED_ROUTE_DRAIN_MS = 5_000

/** Ties a backend socket to the attempt that opened it, so a late answer to a timed-out attempt is ignored. */
interface BackendLink {
  readonly connection: ProxyConnection
  readonly attempt: number
}

export class ProxyConnection {
  readonly splice: Splice
  route: CompiledRoute | undefined
  /** ClientHello bytes read so far (passthrough only), replayed to the backend. */
  sniffed: Uint8Array[] = []
  sniffedBytes = 0
  #attempt = 0
  #member: PoolMember | undefined
  #pool: RuntimePool | undefined
  /** Endpoints that refused this connection: each other endpoint of the pool is tried at most once. */
  #tried: Set<PoolMember> | undefined
  /** The pool whose circuit (maxConnections) counts this connection. */
  #admitted: RuntimePool | undefined
  /** Telemetry: when accepted, and the counters it was counted in (once a route took it). */
  readonly #startMs: number
  #counters: StreamCounters | undefined
  #countedInFlight = false
  #timer: ReturnType<typeof setTimeout> | undefined
  /** When the idle sweep last saw no traffic since its previous visit began. */
  #quietSince = Date.now()
  /** Set while a PROXY protocol header is expected (ports that ask for one only). */
  proxy: ProxyHeaderReader | undefined
  /** The client and the address it connected to, as a received PROXY header said (else the socket's). */
  #endpoints: ProxyEndpoints | undefined

  constructor(
    readonly client: Socket<ProxyConnection>,
    /** The plan read at accept; a passthrough connection still reading its ClientHello follows swaps. */
    public portPlan: PortPlan,
    readonly deps: StreamDeps,
  ) {
    this.#startMs = Date.now()
    this.splice = new Splice(() => this.#release())
    this.splice.client.socket = client
    deps.live.add(this)
    deps.open.count++
  }

  get clientIp(): string {
    return this.#endpoints?.sourceAddress ?? this.client.remoteAddress
  }

  /** The client's endpoints as the backend's PROXY header carries them. */
  get endpoints(): ProxyEndpoints {
    return this.#endpoints ?? {
      sourceAddress: this.client.remoteAddress,
      sourcePort: this.client.remotePort,
      destinationAddress: this.client.localAddress,
      destinationPort: this.client.localPort,
    }
  }

  /** A PROXY protocol header (its addresses, when it carries any) replaces the socket's endpoints. */
  set endpoints(endpoints: ProxyEndpoints) {
    this.#endpoints = endpoints
  }

  /** Close the client when `ms` passes before a backend is connected (slow ClientHello, connect timeout). */
  armTimer(ms: number, why: string): void {
    this.clearTimer()
    this.#timer = setTimeout(() => {
      this.deps.logger.debug('l4: connection timed out', { port: this.portPlan.port, why, client: this.clientIp })
      this.close()
    }, ms)
  }

  clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Choose an endpoint on `route` and connect to it; bytes already read are sent once connected. */
  connect(route: CompiledRoute, avoid?: PoolMember): void {
    this.route = route
    // A retry after a refused connect stays in the pool that refused (the weighted draw was made).
    const choice = avoid && this.#pool ? retryChoice(this.#pool, this.clientIp, avoid, this.#tried) : route.backends.choose(this.clientIp)
    if (choice.kind === 'reject') {
      this.deps.logger.debug('l4: connection rejected', { port: this.portPlan.port, route: route.id, reason: choice.reason })
      this.close()
      return
    }
    const member = choice.member
    const circuit = choice.pool.circuit
    if (circuit && this.#admitted === undefined) {
      const refusedBy = circuit.tryConnection(choice.pool.limits!)
      if (refusedBy !== undefined) {
        this.deps.logger.debug('l4: connection rejected', { port: this.portPlan.port, route: route.id, reason: `circuit-open ${refusedBy}` })
        this.close()
        return
      }
      this.#admitted = choice.pool
    }
    this.#member = member
    this.#pool = choice.pool
    if (telemetry.metrics && this.#counters === undefined) {
      this.#counters = requestMetrics.stream(this.portPlan.mode === 'tls-passthrough' ? 'tls' : 'tcp', `port="${this.portPlan.port}",route="${route.owner.namespace}/${route.owner.name}",backend="${choice.pool.ir.key}"`)
      this.#counters.opened++
    }
    const attempt = ++this.#attempt
    this.armTimer(this.deps.connectTimeoutMs, 'backend connect')
    Bun.connect<BackendLink>({
      hostname: member.state.address,
      port: member.state.port,
      allowHalfOpen: true,
      data: { connection: this, attempt },
      socket: backendHandlers,
    }).catch(() => {
      // connectError below has handled it; the rejected promise carries nothing more.
    })
  }

  close(): void {
    this.splice.finish()
  }

  /**
   * A new plan is live; `port` is this listener's port in it (undefined: the port left the plan).
   * A connection whose route left the port, or whose endpoint left the route, ends both sides
   * cleanly and returns false; the others keep everything they started with. Called per swap,
   * never per chunk.
   */
  onPlan(port: PortPlan | undefined): boolean {
    if (this.splice.finished || this.splice.draining) return true
    if (!port || listenerKind(port.mode) !== 'stream' || (this.route === undefined && port.mode !== this.portPlan.mode)) {
      this.#closeForSwap('port removed')
      return false
    }
    // Not routed yet (passthrough reading its ClientHello): route with the new plan once it is complete.
    if (this.route === undefined) {
      this.portPlan = port
      return true
    }
    const live = liveRoutes(port).get(this.route.id)
    if (!live) {
      this.#closeForSwap('route removed')
      return false
    }
    // A rejected choice has already closed the connection; a member is set from the first connect on.
    if (this.#member && !live.endpoints.has(this.#member.state.key)) {
      this.#closeForSwap('backend endpoint removed')
      return false
    }
    // Still connecting: a retry (connect refused) picks among the route's current endpoints.
    if (!this.splice.backend.socket) this.route = live.route
    return true
  }

  #closeForSwap(why: string): void {
    this.deps.logger.debug('l4: connection closed by a configuration change', {
      port: this.portPlan.port,
      route: this.route?.id,
      endpoint: this.#member?.state.key,
      why,
    })
    // Cuts a peer that does not take its queued bytes or answer with its own FIN in time.
    this.armTimer(REMOVED_ROUTE_DRAIN_MS, 'drain after route removal')
    this.splice.drainAndFinish()
  }

  /**
   * Called by the data plane's idle sweep: close when no byte has moved either way for
   * `idleTimeoutMs` (so the connection is closed between that and one sweep period later).
   */
  sweepIdle(now: number, idleTimeoutMs: number): void {
    if (this.splice.active) {
      this.splice.active = false
      this.#quietSince = now
      return
    }
    if (now - this.#quietSince < idleTimeoutMs) return
    this.deps.logger.debug('l4: idle timeout', { port: this.portPlan.port, route: this.route?.id, client: this.clientIp, idleTimeoutMs })
    this.close()
  }

  /** Backend socket events; a socket from a stale attempt is closed and otherwise ignored. */
  backendOpened(socket: Socket<BackendLink>): void {
    if (socket.data.attempt !== this.#attempt || this.splice.finished) {
      socket.end()
      return
    }
    this.clearTimer()
    socket.setNoDelay(true)
    if (this.#member) {
      this.#member.state.inFlight++
      this.#countedInFlight = true
      this.#pool?.outcome(this.#member.state, 200)
    }
    this.splice.backend.socket = socket
    const version = this.route?.proxyProtocol
    // Ahead of whatever the client has sent already (a ClientHello, early bytes).
    if (version) this.splice.backend.outbox.unshift(buildProxyHeader(version, this.endpoints))
    this.splice.writable(this.splice.backend)
  }

  backendConnectFailed(socket: Socket<BackendLink>, error: Error): void {
    if (socket.data.attempt !== this.#attempt || this.splice.finished) return
    const member = this.#member
    this.deps.logger.debug('l4: backend connect failed', {
      port: this.portPlan.port,
      route: this.route?.id,
      endpoint: member?.state.key,
      error: error.message,
    })
    if (member) {
      this.#pool?.outcome(member.state, 'refused')
      ;(this.#tried ??= new Set()).add(member)
    }
    if (this.route && member && this.#pool && this.#tried!.size < this.#pool.members.length) this.connect(this.route, member)
    else this.close()
  }

  /** Whether events from this backend socket still matter (it is the connected one). */
  owns(socket: Socket<BackendLink>): boolean {
    return this.splice.backend.socket === socket
  }

  #release(): void {
    const counters = this.#counters
    if (counters) {
      counters.closed++
      counters.bytesIn += this.splice.fromClient
      counters.bytesOut += this.splice.fromBackend
      this.#counters = undefined
    }
    if (telemetry.log) {
      const route = this.route
      logStream({ type: this.portPlan.mode === 'tls-passthrough' ? 'tls' : 'tcp', startMs: this.#startMs, clientIp: this.clientIp, bytesIn: this.splice.fromClient, bytesOut: this.splice.fromBackend, route: route ? `${route.owner.namespace}/${route.owner.name}` : '', backend: this.#pool?.ir.key ?? '', endpoint: this.#member?.state.key })
    }
    this.clearTimer()
    this.deps.open.count--
    this.proxy = undefined
    this.sniffed = []
    if (this.#countedInFlight && this.#member) this.#member.state.inFlight--
    this.#countedInFlight = false
    if (this.#admitted) {
      this.#admitted.circuit!.release(this.#admitted.limits)
      this.#admitted = undefined
    }
    this.deps.live.delete(this)
  }
}

const backendHandlers: SocketHandler<BackendLink> = {
  open(socket) {
    socket.data.connection.backendOpened(socket)
  },
  connectError(socket, error) {
    socket.data.connection.backendConnectFailed(socket, error)
  },
  data(socket, chunk) {
    const { connection } = socket.data
    if (connection.owns(socket)) connection.splice.relay(connection.splice.backend, chunk)
  },
  drain(socket) {
    const { connection } = socket.data
    if (connection.owns(socket)) connection.splice.writable(connection.splice.backend)
  },
  end(socket) {
    const { connection } = socket.data
    if (connection.owns(socket)) connection.splice.ended(connection.splice.backend)
  },
  close(socket) {
    const { connection } = socket.data
    if (connection.owns(socket)) connection.splice.closed(connection.splice.backend)
  },
  error(socket, error) {
    const { connection } = socket.data
    connection.deps.logger.debug('l4: backend socket error', { port: connection.portPlan.port, error: error.message })
  },
}
