/**
 * H2Server: the HTTP/2 server of one Gateway listener port (node:http2 on Bun, h2c on loopback).
 * Bun.serve cannot send response trailers, so every h2 stream a client opens comes here:
 *   - gRPC calls (content-type application/grpc*) are proxied stream to stream with trailers,
 *     flow control and grpc-timeout (grpc-proxy.ts);
 *   - every other h2 request goes through the ordinary HTTP pipeline (fetch-bridge.ts).
 *
 * Who feeds it, and the API for that (the loopback connection's local port identifies the client):
 *   - the plain HTTP front (http/front/client-connection.ts) splices an h2c prior-knowledge
 *     connection here unchanged, and records the client in its peer map, which this server reads
 *     through `peerOf`;
 *   - a TLS front that terminates TLS itself and negotiated ALPN "h2" splices the decrypted bytes
 *     to `h2.port` (127.0.0.1) the same way: call `h2.registerPeer(localPort, { clientIp,
 *     serverName })` with the loopback socket's local port once it is connected, before relaying
 *     any byte, and `h2.closed(localPort)` when that connection closes.
 *     `serverName` (SNI) drives the 421-style misdirected check; the server knows its listener
 *     port, so one H2Server serves one HTTPS port.
 *
 * ```ts
 * const h2 = H2Server.start({ irPort, active, deps, limits, logger })   // h2c on 127.0.0.1:h2.port
 * const link = await Bun.connect({ hostname: '127.0.0.1', port: h2.port, socket })
 * h2.registerPeer(link.localPort, { clientIp, serverName })             // then relay the bytes
 * ...
 * h2.closed(link.localPort)
 * await h2.stop()                                                       // GOAWAY, then closes
 * ```
 * The plan is read per stream from `active`, so route changes apply to the next call.
 */
import http2, { type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { ActiveSnapshot } from '../snapshot.ts'
import type { ProxyDeps } from '../http/proxy.ts'
import type { HttpLimits } from '../http/limits.ts'
import type { TlsPeer } from '../http/tls/peer.ts'
import { isGrpcContentType, GrpcStatus, NO_DATE, trailersOnly } from './grpc-status.ts'
import { proxyGrpc } from './grpc-proxy.ts'
import { serveThroughPipeline } from './fetch-bridge.ts'
import { shedStream } from './shed.ts'

export type H2Peer = TlsPeer

export interface H2ServerOptions {
  /** Gateway listener port from the IR (the plan's key); 0 in tests, see `listenerPort`. */
  readonly irPort: number
  readonly active: ActiveSnapshot
  readonly deps: ProxyDeps
  readonly limits: HttpLimits
  /** The owner's peer lookup (the plain front shares its map); absent: registerPeer/closed fill the server's own. */
  readonly peerOf?: (localPort: number | undefined) => H2Peer | undefined
  /** The port clients connected to, when irPort is 0 (bound later). */
  readonly listenerPort?: () => number
  /** Streams a client may open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams?: number
  /** The data plane's load shedder: while overloaded, new streams get 503 + Retry-After (gRPC: UNAVAILABLE). */
  readonly shedder?: { readonly overloaded: boolean }
}

/** Per client connection: who it is (resolved on its first stream) and its open streams. */
interface SessionInfo {
  peer: H2Peer | undefined
  streams: number
}

export class H2Server {
  readonly #server: Http2Server
  readonly #options: H2ServerOptions
  readonly #peers = new Map<number, H2Peer>()
  readonly #sessions = new Map<Http2Session, SessionInfo>()
  #stopping: Promise<void> | undefined

  private constructor(options: H2ServerOptions) {
    this.#options = options
    this.#server = http2.createServer({
      settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? 1000, enablePush: false },
      maxSessionMemory: 64,
    })
    this.#server.on('session', (session: Http2Session) => {
      this.#sessions.set(session, { peer: undefined, streams: 0 })
      session.on('close', () => this.#sessions.delete(session))
      session.on('error', () => {})
      // A connection without streams for the keep-alive timeout gets GOAWAY (the front's tunnel
      // has no idle timer of its own). Quiet streams are left alone: grpc-timeout bounds a call.
      session.setTimeout(options.limits.keepAliveIdleSeconds * 1000, () => {
        if ((this.#sessions.get(session)?.streams ?? 0) === 0) session.close()
      })
      if (this.#stopping) session.close()
    })
    this.#server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#onStream(stream, headers))
    this.#server.on('error', (err: Error) => options.deps.logger.error('h2 server error', { port: options.irPort, error: err.message }))
    // Bun binds synchronously (verified in 1.4.5): the port is known on return.
    this.#server.listen(0, '127.0.0.1')
  }

  static start(options: H2ServerOptions): H2Server {
    return new H2Server(options)
  }

  /** The loopback port to splice h2 connections to. */
  get port(): number {
    return (this.#server.address() as { port: number }).port
  }

  /** A connection to `port` from this local port carries `peer`'s traffic (call before relaying bytes). */
  registerPeer(localPort: number, peer: H2Peer): void {
    this.#peers.set(localPort, peer)
  }

  /** That connection is gone. */
  closed(localPort: number | undefined): void {
    if (localPort !== undefined) this.#peers.delete(localPort)
  }

  /** Peers registered and not yet closed (tests). */
  get peerCount(): number {
    return this.#peers.size
  }

  /** Client connections open now (tests). */
  get sessionCount(): number {
    return this.#sessions.size
  }

  /**
   * Stop accepting; open connections get GOAWAY and finish their streams, or are cut when
   * `force`. May be called again (e.g. graceful first, forced after a grace period).
   */
  stop(force = false): Promise<void> {
    this.#stopping ??= new Promise<void>((resolve) => this.#server.close(() => resolve()))
    for (const session of this.#sessions.keys()) (force ? session.destroy() : session.close())
    return this.#stopping
  }

  #peerOf(session: Http2Session): H2Peer | undefined {
    let info = this.#sessions.get(session)
    if (!info) this.#sessions.set(session, (info = { peer: undefined, streams: 0 }))
    if (info.peer) return info.peer
    const localPort = session.socket?.remotePort
    info.peer = this.#options.peerOf?.(localPort) ?? (localPort === undefined ? undefined : this.#peers.get(localPort))
    return info.peer
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const options = this.#options
    const port = options.active.current?.ports.get(options.irPort)
    const grpc = isGrpcContentType(headers['content-type'])
    if (!port) {
      // The port left the plan while this connection drains.
      if (grpc) stream.respond(trailersOnly(GrpcStatus.UNAVAILABLE, 'listener is gone'), { endStream: true, ...NO_DATE })
      else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
      return
    }
    // Overload (load-shedder.ts): new streams are refused cheaply; open ones keep going.
    if (options.shedder?.overloaded) return shedStream(stream, grpc)
    const session = stream.session!
    const peer = this.#peerOf(session)
    const info = this.#sessions.get(session)
    if (info) {
      info.streams++
      stream.once('close', () => info.streams--)
    }
    const listenerPort = options.irPort === 0 ? (options.listenerPort?.() ?? 0) : options.irPort
    const clientIp = peer?.clientIp ?? stream.session?.socket?.remoteAddress ?? ''
    if (grpc) {
      void proxyGrpc(stream, headers, port, { clientIp, serverName: peer?.serverName, listenerPort, logger: options.deps.logger })
      return
    }
    const conn = { clientIp, serverName: peer?.serverName, listenerPort, idleTimeoutSeconds: options.limits.keepAliveIdleSeconds, limits: options.limits }
    serveThroughPipeline(stream, headers, port, conn, options.deps).catch((err: unknown) => {
      options.deps.logger.error('h2 request failed', { port: options.irPort, error: err instanceof Error ? err.message : String(err) })
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
    })
  }
}
