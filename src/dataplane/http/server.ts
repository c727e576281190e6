/**
 * HttpDataplane: one Bun.serve per HTTP port of the live plan; HTTPS ports are an HttpsPort
 * (tls/https-port.ts: a TLS front splicing to Bun.serve generations on loopback, for SNI-aware
 * 421s, h2 and certificate rotation without a restart).
 *
 * apply() compiles the IR, publishes the plan (one reference assignment), then reconciles
 * sockets: servers open for new ports and close for removed ones. Route changes never touch
 * sockets; every request reads `active.current` once and resolves its port from that plan.
 */
import { ConnectionGate } from '../overload/connection-gate.ts'
import { LoadShedder } from '../overload/load-shedder.ts'
import { addOverloadGauges } from '../overload/metrics.ts'
import { heldRequestBytes } from './front/request-buffer.ts'
import type { Server } from 'bun'
import type { Snapshot } from '../../ir/types.ts'
import { ActiveSnapshot, compile, type Plan, type PortPlan } from '../snapshot.ts'
import { EndpointRegistry } from '../upstream/registry.ts'
import { silentLogger, type Logger } from '../log.ts'
import { handleRequest, type Connection } from './handler.ts'
import { errorResponse, type ProxyDeps } from './proxy.ts'
import type { WebSocketUpgrader } from './websocket.ts'
import { isWebSocketUpgrade, WebSocketProxy } from './websocket.ts'
import { HttpsPort } from './tls/https-port.ts'
import type { TlsPeer } from './tls/generation.ts'
import { bunHeaderLimit, resolveLimits, type HttpLimits } from './limits.ts'
import { closingError, rejectMalformed, sawUpgradeHeader } from './request-guard.ts'
import { HttpFront } from './front/http-front.ts'
import { LinkPools } from './front/links.ts'
import { H2Server } from '../http2/server.ts'

export interface HttpDataplaneOptions {
  /** Address to bind, default '0.0.0.0'. */
  readonly hostname?: string
  readonly logger?: Logger
  /** Endpoint state shared with other consumers (L4, admin); one is created when absent. */
  readonly registry?: EndpointRegistry
  /** Seconds an idle client connection is kept (Bun's default of 10 cuts quiet SSE streams). Max 255. */
  readonly idleTimeoutSeconds?: number
  /** Largest request body accepted, default unlimited (bodies stream; Bun's own default is 128 MiB). */
  readonly maxRequestBodySize?: number
  /** Bind every port with SO_REUSEPORT so several workers can share it (multi-core). */
  readonly reusePort?: boolean
  /** Request limits and timeouts (limits.ts); unset fields keep their defaults. */
  readonly limits?: Partial<HttpLimits>
}

export interface PortStatus {
  /** Gateway listener port from the IR. */
  readonly port: number
  readonly protocol: 'HTTP' | 'HTTPS'
  /** Port actually bound (differs from `port` only when the IR asks for port 0). */
  readonly boundPort?: number
  readonly error?: string
}

export interface ApplyResult {
  readonly revision: number
  readonly ports: readonly PortStatus[]
  readonly opened: readonly number[]
  readonly closed: readonly number[]
  /** Human-readable problems (e.g. a port that could not be bound); empty when all applied. */
  readonly problems: readonly string[]
  /** IR ports that are not listening (bind failed): their listeners must not claim Programmed. */
  readonly failedPorts?: readonly number[]
}

interface RunningServer {
  readonly front: HttpFront
  readonly protocol: 'HTTP'
}

/** Keep-alive links to upstream endpoints for the fronts' direct path: one set per process (worker). */
const directLinks = new LinkPools()

export class HttpDataplane {
  readonly active: ActiveSnapshot
  readonly registry: EndpointRegistry
  readonly #logger: Logger
  readonly #hostname: string
  readonly #sharePorts: boolean
  readonly #idleTimeout: number
  readonly #maxBody: number
  readonly limits: HttpLimits
  /** Portico counts header bytes only when its limit is below what Bun's parser already enforces. */
  readonly #checkHeaderBytes: boolean
  readonly #servers = new Map<number, RunningServer>()
  /** WebSocket sessions of every server of this data plane (closed with 1001 on stop). */
  readonly websockets: WebSocketProxy
  readonly #https = new Map<number, HttpsPort>()
  /** Last bind error per port, so a port that still cannot bind is reported on every apply. */
  readonly #failed = new Map<number, string>()
  /** What the pipeline needs from the data plane, one object for every request. */
  readonly #deps: ProxyDeps

  constructor(options: HttpDataplaneOptions = {}) {
    this.#logger = options.logger ?? silentLogger
    this.#hostname = options.hostname ?? '0.0.0.0'
    this.#sharePorts = options.reusePort ?? false
    // idleTimeoutSeconds (the older, single knob) sets both the keep-alive and the stream default.
    const idle = options.idleTimeoutSeconds
    this.limits = resolveLimits({ keepAliveIdleSeconds: idle, streamIdleSeconds: idle, ...options.limits })
    this.#checkHeaderBytes = this.limits.maxHeaderBytes < bunHeaderLimit()
    this.#idleTimeout = this.limits.keepAliveIdleSeconds
    this.#maxBody = options.maxRequestBodySize ?? Number.MAX_SAFE_INTEGER
    this.registry = options.registry ?? new EndpointRegistry()
    this.active = new ActiveSnapshot()
    this.websockets = new WebSocketProxy({ registry: this.registry, logger: this.#logger })
    this.#deps = { registry: this.registry, logger: this.#logger }
    this.gate = new ConnectionGate(this.limits)
    this.shedder = new LoadShedder(this.limits)
    this.#removeGauges = addOverloadGauges(() => [
      ['portico_connections_open', this.gate.open],
      ['portico_request_buffer_bytes', heldRequestBytes()],
    ])
  }

  /** Admission of client connections on this plane's HTTP listeners (per worker). */
  readonly gate: ConnectionGate
  /** Sheds new requests while this worker is overloaded. */
  readonly shedder: LoadShedder
  readonly #removeGauges: () => void

  /** Compile and publish a snapshot, then open/close servers so ports match it. Never throws for bind errors. */
  async apply(snapshot: Snapshot): Promise<ApplyResult> {
    let plan: Plan
    try {
      plan = compile(snapshot, this.registry)
    } catch (err) {
      // E.g. a RegExp the translator let through. The previous plan stays live.
      const message = `snapshot ${snapshot.revision} did not compile: ${err instanceof Error ? err.message : String(err)}`
      this.#logger.error('data plane kept the previous plan', { revision: snapshot.revision, error: message })
      return { revision: snapshot.revision, ports: [], opened: [], closed: [], problems: [message], failedPorts: snapshot.http.map((p) => p.port) }
    }
    return this.applyPlan(plan)
  }

  async applyPlan(plan: Plan): Promise<ApplyResult> {
    this.active.swap(plan)
    this.websockets.onPlan(plan)
    for (const running of this.#servers.values()) running.front.onPlan(plan)
    const opened: number[] = []
    const closed: number[] = []
    const statuses: PortStatus[] = []
    const problems: string[] = []

    // Close what left the plan or changed protocol first, so a port can switch HTTP <-> HTTPS.
    for (const [port, running] of this.#servers) {
      if (plan.ports.get(port)?.ir.protocol === 'HTTP') continue
      this.#servers.delete(port)
      closed.push(port)
      await this.#stopServer(port, running)
    }
    for (const [port, https] of this.#https) {
      if (plan.ports.get(port)?.ir.protocol === 'HTTPS') continue
      this.#https.delete(port)
      closed.push(port)
      // The front socket is released at once; in-flight requests finish in the background.
      void https.stop(false)
    }

    for (const [port, portPlan] of plan.ports) {
      if (portPlan.ir.protocol === 'HTTPS') {
        statuses.push(this.#applyHttps(portPlan, opened, problems))
        continue
      }
      const running = this.#servers.get(port)
      if (running) {
        statuses.push({ port, protocol: running.protocol, boundPort: running.front.port })
        continue
      }
      const started = this.#start(portPlan)
      if (typeof started === 'string') {
        this.#failed.set(port, started)
        problems.push(`port ${port}: ${started}`)
        statuses.push({ port, protocol: portPlan.ir.protocol, error: started })
        continue
      }
      this.#failed.delete(port)
      this.#servers.set(port, started)
      opened.push(port)
      statuses.push({ port, protocol: started.protocol, boundPort: started.front.port })
    }

    for (const port of this.#failed.keys()) if (!plan.ports.has(port)) this.#failed.delete(port)

    if (opened.length || closed.length) this.#logger.info('http ports reconciled', { revision: plan.revision, opened, closed })
    const failedPorts = statuses.filter((s) => s.error !== undefined).map((s) => s.port)
    return { revision: plan.revision, ports: statuses, opened, closed, problems, failedPorts }
  }

  /** The port a listener port is actually bound to (for tests and port 0). */
  boundPort(port: number): number | undefined {
    return this.#servers.get(port)?.front.port ?? this.#https.get(port)?.boundPort
  }

  /** The HTTPS port object (certificate generations), for tests. */
  httpsPort(port: number): HttpsPort | undefined {
    return this.#https.get(port)
  }

  /**
   * Stop accepting; in-flight requests get `graceMs` to finish (long streams would otherwise hold
   * shutdown forever), then connections are closed. `force` closes them at once.
   */
  async stop(force = false, graceMs = 10_000): Promise<void> {
    // WebSockets never finish by themselves: tell both ends we are going away (1001) now.
    this.websockets.closeAll(1001, 'gateway shutting down')
    this.shedder.stop()
    this.#removeGauges()
    const servers = [...this.#servers]
    const https = [...this.#https.values()]
    this.#servers.clear()
    this.#https.clear()
    await Promise.all([
      ...https.map((port) => withGrace(port.stop(force), graceMs, () => port.stop(true))),
      ...servers.map(([port, running]) => this.#stopServer(port, running, force, graceMs)),
    ])
  }

  #applyHttps(portPlan: PortPlan, opened: number[], problems: string[]): PortStatus {
    const port = portPlan.port
    const running = this.#https.get(port)
    if (running) {
      // A failed rotation keeps the previous certificates serving: a problem, not a port error.
      problems.push(...running.update(portPlan).problems)
      return { port, protocol: 'HTTPS', boundPort: running.boundPort }
    }
    const started = HttpsPort.start(portPlan, {
      hostname: this.#hostname,
      reusePort: this.#sharePorts,
      logger: this.#logger,
      serve: (tls, peerOf) =>
        Bun.serve({
          port: 0,
          hostname: '127.0.0.1',
          tls: tls.map((t) => ({ ...t })),
          // Experimental in Bun 1.4.5, verified: h2 via ALPN, HTTP/1.1 (and WebSocket upgrades) otherwise.
          http2: true,
          ...this.#requestOptions(port, peerOf),
        }),
    })
    if (typeof started === 'string') {
      this.#failed.set(port, started)
      problems.push(`port ${port}: ${started}`)
      return { port, protocol: 'HTTPS', error: started }
    }
    this.#failed.delete(port)
    problems.push(...started.problems)
    this.#https.set(port, started.port)
    opened.push(port)
    return { port, protocol: 'HTTPS', boundPort: started.port.boundPort }
  }

  /** What every Bun.serve of this data plane shares: limits and the request entry point. */
  #requestOptions(irPort: number, peerOf?: (peerPort: number | undefined) => TlsPeer | undefined) {
    return {
      development: false,
      idleTimeout: this.#idleTimeout,
      maxRequestBodySize: this.#maxBody,
      websocket: this.websockets.handlers,
      fetch: (req: Request, srv: Server<undefined>) => this.#handle(req, srv, irPort, peerOf),
      error: (err: Error) => {
        this.#logger.error('unhandled error in request', { port: irPort, error: String(err) })
        return errorResponse(500, 'internal error')
      },
    }
  }

  #start(portPlan: PortPlan): RunningServer | string {
    const irPort = portPlan.port
    const protocol = 'HTTP'
    const front = HttpFront.start({
      irPort,
      hostname: this.#hostname,
      reusePort: this.#sharePorts,
      active: this.active,
      registry: this.registry,
      links: directLinks,
      limits: this.limits,
      logger: this.#logger,
      gate: this.gate,
      shedder: this.shedder,
      serveInner: (peerOf) =>
        Bun.serve({
          port: 0,
          hostname: '127.0.0.1',
          ...this.#requestOptions(irPort, peerOf),
        }),
      // h2c with prior knowledge, spliced by the front: gRPC with trailers, other h2 through the pipeline.
      serveH2: (peerOf) => H2Server.start({ irPort, active: this.active, deps: this.#deps, limits: this.limits, peerOf, listenerPort: () => this.boundPort(0) ?? 0 }),
    })
    if (typeof front === 'string') {
      this.#logger.error('http server failed to bind', { port: irPort, error: front })
      return front
    }
    this.#logger.info('http server listening', { port: irPort, boundPort: front.port, protocol })
    return { front, protocol }
  }

  /** `peerOf` is set for HTTPS: the TLS front knows the client address and SNI, the inner server sees loopback. */
  #handle(req: Request, server: Server<undefined>, irPort: number, peerOf?: (peerPort: number | undefined) => TlsPeer | undefined): Promise<Response | undefined> | Response {
    const plan = this.active.current
    const portPlan = plan?.ports.get(irPort)
    // The port left the plan but this server is still draining: nothing routes here any more.
    if (!portPlan) return errorResponse(404, 'no route')
    // Overload sheds new requests with a cheap synchronous answer rather than queueing them all.
    const max = this.limits.maxConcurrentRequests
    if (max > 0 && server.pendingRequests > max) return closingError(503, 'overloaded')
    // Read once here and handed down: every header read is a native call.
    const host = req.headers.get('host')
    const malformed = rejectMalformed(req, host, this.limits, this.#checkHeaderBytes)
    if (malformed) return malformed
    const address = server.requestIP(req)
    const peer = peerOf?.(address?.port)
    const conn = new ClientConnection(
      server,
      peer ? peer.clientIp : (address?.address ?? ''),
      peer?.serverName,
      irPort === 0 ? (this.boundPort(0) ?? 0) : irPort,
      this.#idleTimeout,
      this.limits,
      // The header pass above saw whether there is an Upgrade field: most requests skip the lookup.
      sawUpgradeHeader() && isWebSocketUpgrade(req) ? this.websockets.upgraderFor(req, server) : undefined,
    )
    // handleRequest answers its own failures with a 500 (no .catch() per request).
    return handleRequest(req, portPlan, conn, this.#deps, host)
  }

  async #stopServer(port: number, running: RunningServer, force = false, graceMs = 10_000): Promise<void> {
    try {
      await running.front.stop(force, graceMs)
      this.#logger.info('http server stopped', { port })
    } catch (err) {
      this.#logger.warn('http server stop failed', { port, error: String(err) })
    }
  }
}

/** One client request's view of its connection: the method sits on the prototype, so no closure per request. */
class ClientConnection implements Connection {
  constructor(
    readonly server: Server<undefined>,
    readonly clientIp: string,
    readonly serverName: string | undefined,
    readonly listenerPort: number,
    readonly idleTimeoutSeconds: number,
    readonly limits: HttpLimits,
    readonly upgradeWebSocket: WebSocketUpgrader | undefined,
  ) {}

  setIdleTimeout(req: Request, seconds: number): void {
    this.server.timeout(req, seconds)
  }
}

/** Wait for `stopping` at most `graceMs`, then run `force`. */
async function withGrace(stopping: Promise<void>, graceMs: number, force: () => Promise<void>): Promise<void> {
  let timer: Timer | undefined
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(() => resolve(force()), graceMs)
  })
  await Promise.race([stopping, grace])
  clearTimeout(timer)
}
