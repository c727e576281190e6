/**
 * HttpDataplane: one HttpFront per HTTP or HTTPS port of the live plan (front/http-front.ts: our
 * own HTTP/1.1 on Bun.listen, with a Bun.serve on loopback for the full pipeline and h2). On
 * HTTPS ports the front terminates TLS itself (front/tls-handshake.ts), picking the certificate
 * by SNI; a certificate change gives new connections new contexts without touching the socket.
 *
 * apply() compiles the IR, publishes the plan (one reference assignment), then reconciles
 * sockets: servers open for new ports and close for removed ones. Route changes never touch
 * sockets; every request reads `active.current` once and resolves its port from that plan.
 */
import { ConnectionGate } from '../overload/connection-gate.ts'
import type { ProcessGauges } from '../overload/process-gauges.ts'
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
import { TlsContexts } from './tls/contexts.ts'
import type { TlsPeer } from './tls/peer.ts'
import { bunHeaderLimit, resolveLimits, type HttpLimits } from './limits.ts'
import { closingError, rejectMalformed, sawUpgradeHeader } from './request-guard.ts'
import { HttpFront } from './front/http-front.ts'
import { LinkPools } from './front/links.ts'
import { H2Server } from '../http2/server.ts'
import { shedResponse } from '../http2/shed.ts'

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
  /** The process's connection and request-buffer counts (worker threads share them); absent: this plane's own. */
  readonly gauges?: ProcessGauges
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

/** What new TLS contexts are built for: the certificates and the port's TLS settings (ClientTrafficPolicy tls). */
function tlsKey(portPlan: PortPlan): string {
  const settings = portPlan.ir.connection?.tls
  return settings ? `${portPlan.tlsFingerprint}|${JSON.stringify(settings)}` : portPlan.tlsFingerprint
}

interface RunningServer {
  readonly front: HttpFront
  readonly protocol: 'HTTP' | 'HTTPS'
  /** HTTPS: the certificates new connections get (a change rotates them). */
  tlsFingerprint: string | undefined
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
    this.gate = new ConnectionGate(this.limits, options.gauges)
    this.shedder = new LoadShedder(this.limits)
    this.#removeGauges = addOverloadGauges(() => [
      ['portico_connections_open', this.gate.open],
      ['portico_request_buffer_bytes', heldRequestBytes()],
    ])
  }

  /** Admission of client connections on this plane's HTTP listeners (counted for the process). */
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
      if (plan.ports.get(port)?.ir.protocol === running.protocol) continue
      this.#servers.delete(port)
      closed.push(port)
      await this.#stopServer(port, running)
    }

    for (const [port, portPlan] of plan.ports) {
      const running = this.#servers.get(port)
      if (running) {
        if (running.protocol === 'HTTPS') problems.push(...this.#rotate(running, portPlan))
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
      problems.push(...started.problems)
      this.#servers.set(port, started.running)
      opened.push(port)
      statuses.push({ port, protocol: started.running.protocol, boundPort: started.running.front.port })
    }

    for (const port of this.#failed.keys()) if (!plan.ports.has(port)) this.#failed.delete(port)

    if (opened.length || closed.length) this.#logger.info('http ports reconciled', { revision: plan.revision, opened, closed })
    const failedPorts = statuses.filter((s) => s.error !== undefined).map((s) => s.port)
    return { revision: plan.revision, ports: statuses, opened, closed, problems, failedPorts }
  }

  /** The port a listener port is actually bound to (for tests and port 0). */
  boundPort(port: number): number | undefined {
    return this.#servers.get(port)?.front.port
  }

  /** Fingerprint of the certificates (and TLS settings) an HTTPS port hands new connections (tests). */
  tlsFingerprint(port: number): string | undefined {
    return this.#servers.get(port)?.tlsFingerprint
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
    this.#servers.clear()
    await Promise.all(servers.map(([port, running]) => this.#stopServer(port, running, force, graceMs)))
  }

  /** New certificates for an HTTPS port: new connections get them, open ones finish on theirs. */
  #rotate(running: RunningServer, portPlan: PortPlan): string[] {
    const key = tlsKey(portPlan)
    if (key === running.tlsFingerprint) return []
    const built = TlsContexts.build(portPlan.tls ?? [], portPlan.ir.connection?.tls)
    if (typeof built === 'string') {
      // The previous certificates stay live: a problem, not a port error.
      this.#logger.error('certificate rotation failed; previous certificates stay live', { port: portPlan.port, error: built })
      return [`port ${portPlan.port}: ${built}`]
    }
    running.front.setTls(built.contexts)
    running.tlsFingerprint = key
    this.#logger.info('https certificates rotated', { port: portPlan.port })
    for (const problem of built.problems) this.#logger.warn('certificate skipped', { port: portPlan.port, problem })
    return built.problems.map((p) => `port ${portPlan.port}: ${p}`)
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

  #start(portPlan: PortPlan): { running: RunningServer; problems: string[] } | string {
    const irPort = portPlan.port
    const protocol = portPlan.ir.protocol === 'HTTPS' ? 'HTTPS' : 'HTTP'
    let tls: TlsContexts | undefined
    let problems: string[] = []
    if (protocol === 'HTTPS') {
      const built = TlsContexts.build(portPlan.tls ?? [], portPlan.ir.connection?.tls)
      if (typeof built === 'string') return built
      tls = built.contexts
      problems = built.problems.map((p) => `port ${irPort}: ${p}`)
      for (const problem of built.problems) this.#logger.warn('certificate skipped', { port: irPort, problem })
    }
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
      ...(tls ? { tls } : {}),
      serveInner: (peerOf) =>
        Bun.serve({
          port: 0,
          hostname: '127.0.0.1',
          // h2c with prior knowledge (experimental in Bun 1.4.5, verified): h2 clients of ports without gRPC.
          http2: true,
          ...this.#requestOptions(irPort, peerOf),
        }),
      // h2c with prior knowledge, spliced by the front: gRPC with trailers, other h2 through the pipeline.
      serveH2: (peerOf) => H2Server.start({ irPort, active: this.active, deps: this.#deps, limits: this.limits, peerOf, listenerPort: () => this.boundPort(0) ?? 0, shedder: this.shedder }),
    })
    if (typeof front === 'string') {
      this.#logger.error('http server failed to bind', { port: irPort, error: front })
      return front
    }
    this.#logger.info(protocol === 'HTTPS' ? 'https port listening' : 'http server listening', { port: irPort, boundPort: front.port, protocol })
    return { running: { front, protocol, tlsFingerprint: protocol === 'HTTPS' ? tlsKey(portPlan) : undefined }, problems }
  }

  /** `peerOf` is set for HTTPS: the TLS front knows the client address and SNI, the inner server sees loopback. */
  #handle(req: Request, server: Server<undefined>, irPort: number, peerOf?: (peerPort: number | undefined) => TlsPeer | undefined): Promise<Response | undefined> | Response {
    const plan = this.active.current
    const portPlan = plan?.ports.get(irPort)
    // The port left the plan but this server is still draining: nothing routes here any more.
    if (!portPlan) return errorResponse(404, 'no route')
    const address = server.requestIP(req)
    const peer = peerOf?.(address?.port)
    // Overload sheds new requests with a cheap synchronous answer rather than queueing them all.
    // HTTP/1.1 requests were shed by the front already; h2 streams reach no front parser, so here.
    const max = this.limits.maxConcurrentRequests
    if (max > 0 && server.pendingRequests > max) return peer?.h2 ? shedResponse(req.headers.get('content-type')) : closingError(503, 'overloaded')
    if (peer?.h2 && this.shedder.overloaded) return shedResponse(req.headers.get('content-type'))
    // Read once here and handed down: every header read is a native call.
    const host = req.headers.get('host')
    const malformed = rejectMalformed(req, host, this.limits, this.#checkHeaderBytes)
    if (malformed) return malformed
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

