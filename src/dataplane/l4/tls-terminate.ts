/**
 * TLSRoute on a Terminate listener: node:tls decrypts, the plaintext goes to a plain TCP backend.
 *
 * node:tls rather than Bun.listen({tls}) because only node:tls offers SNICallback in Bun, and the
 * callback reads the current plan, so certificate and route changes never touch the socket.
 * Streams are joined with pipe(), which bounds buffering with highWaterMark in both directions.
 *
 * The port is bound by a node:net server whose connections are handed to the (never listening)
 * node:tls server unread, so the TLS server still does SNI, and the raw accept is where the
 * port's ClientTrafficPolicy settings apply: maxConnections (closed before the handshake) and
 * PROXY protocol. A PROXY header is read off the raw socket, then the ClientHello, whose SNI picks
 * the certificate; the TLS socket is then built over a stream that replays those bytes (node:tls
 * in Bun ignores SNICallback for such sockets, and will not take a socket whose bytes were read).
 */
import { connect, createServer as createNetServer, type Server as NetServer, type Socket as NetSocket } from 'node:net'
import { Duplex } from 'node:stream'
import { connect as tlsConnect, createServer, TLSSocket, type Server } from 'node:tls'
import type { Logger } from '../log.ts'
import { buildProxyHeader, ProxyHeaderReader, type ProxyEndpoints } from '../proxy-protocol.ts'
import type { EndpointRegistry } from '../upstream/registry.ts'
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello.ts'
import { survives, type PortPlan } from './plan.ts'
import { CLIENT_HELLO_TIMEOUT_MS } from './tls-passthrough.ts'

export interface TerminateListenerOptions {
  readonly hostname: string
  readonly port: number
  readonly currentPlan: () => PortPlan | undefined
  readonly logger: Logger
  readonly registry: EndpointRegistry
  readonly connectTimeoutMs: number
  /** Close a connection with no traffic either way for this long; 0 = never. */
  readonly idleTimeoutMs: number
}

/** How long a side that got its FIN may linger waiting for the peer's before it is destroyed. */
const HALF_CLOSED_LINGER_MS = 30_000
/** How long a connection ended by a swap may take to flush and close before it is destroyed. */
const REMOVED_ROUTE_DRAIN_MS = 5_000

/** A spliced connection and what it was routed to, for the check on each swap. */
interface Terminated {
  /** The TLS socket; on a mixed port, for a Passthrough route, the raw socket. */
  readonly client: NetSocket
  readonly backend: NetSocket
  readonly routeId: string
  readonly endpoint: string
}

export class TerminateListener {
  /** node:tls does the TLS; it never listens itself. */
  readonly #server: Server
  /** Binds the port. */
  readonly #raw: NetServer
  /** Client connections open (maxConnections), from accept to close. */
  #clients = 0
  readonly #open = new Set<NetSocket>()
  readonly #connections = new Set<Terminated>()
  #defaultCertificate: string | undefined

  private constructor(private readonly options: TerminateListenerOptions) {
    this.#server = createServer({
      allowHalfOpen: true,
      SNICallback: (serverName, done) => {
        const route = options.currentPlan()?.sni.match(normalise(serverName))
        const context = route?.tls?.contextFor(normalise(serverName))
        if (context) done(null, context)
        else done(new Error(`no TLSRoute certificate for ${serverName}`))
      },
    })
    this.#server.on('secureConnection', (socket) => this.#accept(socket, undefined))
    this.#server.on('tlsClientError', (error) => options.logger.debug('l4: TLS handshake failed', { port: options.port, error: error.message }))
    this.#raw = createNetServer({ allowHalfOpen: true }, (socket) => this.#connection(socket))
  }

  /** Rejects when the port cannot be bound. */
  static async listen(options: TerminateListenerOptions): Promise<TerminateListener> {
    const listener = new TerminateListener(options)
    await new Promise<void>((resolve, reject) => {
      listener.#raw.once('error', reject)
      listener.#raw.listen(options.port, options.hostname, () => {
        listener.#raw.off('error', reject)
        resolve()
      })
    })
    listener.#raw.on('error', (error) => options.logger.warn('l4: TLS listener error', { port: options.port, error: error.message }))
    listener.refresh()
    return listener
  }

  /** Serve the fallback route's certificate to clients that send no SNI (SNICallback is not called then). */
  refresh(): void {
    const pems = this.options.currentPlan()?.sni.match(undefined)?.tls?.defaultPems
      ?? this.options.currentPlan()?.routes.find((route) => route.tls)?.tls?.defaultPems
    if (!pems || pems.cert === this.#defaultCertificate) return
    try {
      this.#server.setSecureContext({ cert: pems.cert, key: pems.key })
      this.#defaultCertificate = pems.cert
    } catch (error) {
      this.options.logger.warn('l4: cannot set default certificate', { port: this.options.port, error: (error as Error).message })
    }
  }

  /**
   * A new plan is live (`port` undefined: this listener leaves it). Connections whose route left
   * the port or whose endpoint left the route end cleanly: what is buffered is written, the
   * client gets close_notify and FIN, the backend FIN; both are destroyed if they linger. The
   * others keep running untouched. Returns how many were ended.
   */
  reconcile(port: PortPlan | undefined): number {
    const plan = port?.mode === 'tls-terminate' ? port : undefined
    let ended = 0
    for (const connection of this.#connections) {
      if (survives(plan, connection.routeId, connection.endpoint)) continue
      this.#connections.delete(connection)
      ended++
      const { client, backend } = connection
      this.options.logger.debug('l4: connection closed by a configuration change', { port: this.options.port, route: connection.routeId, endpoint: connection.endpoint })
      client.unpipe(backend)
      backend.unpipe(client)
      // Discard what still arrives, so each side's own FIN is read and its socket closes.
      client.resume()
      backend.resume()
      client.end()
      backend.end()
      setTimeout(() => {
        client.destroy()
        backend.destroy()
      }, REMOVED_ROUTE_DRAIN_MS).unref()
    }
    return ended
  }

  /**
   * Stop accepting now; open connections continue unless `closeActive`. The promise settles when
   * the last connection is gone (node:net semantics), so a port swap must not wait for it.
   */
  close(closeActive: boolean): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#raw.close(() => resolve()))
    if (closeActive) for (const socket of this.#open) socket.destroy()
    return closed
  }

  /** A raw connection was accepted: apply the port's settings, then hand it to TLS. */
  #connection(socket: NetSocket): void {
    const settings = this.options.currentPlan()?.connection
    socket.on('error', (error) => this.options.logger.debug('l4: client socket error', { port: this.options.port, error: error.message }))
    if (settings?.maxConnections !== undefined && this.#clients >= settings.maxConnections) {
      this.options.logger.debug('l4: connection limit reached', { port: this.options.port, maxConnections: settings.maxConnections })
      socket.destroy()
      return
    }
    this.#clients++
    socket.once('close', () => this.#clients--)
    this.#track(socket)
    // A mixed port reads the ClientHello itself: its SNI picks Terminate or Passthrough.
    if (settings?.proxyProtocol || this.options.currentPlan()?.mixed) this.#readPreamble(socket, settings?.proxyProtocol)
    else this.#server.emit('connection', socket)
  }

  /**
   * PROXY header (when `proxy`), then ClientHello, read off the raw socket; then TLS over a stream
   * that starts with the hello, or, for a Passthrough route of a mixed port, the raw bytes spliced.
   */
  #readPreamble(socket: NetSocket, proxy: { readonly optional: boolean } | undefined): void {
    const { logger, port } = this.options
    const reader = new ProxyHeaderReader(proxy?.optional ?? true)
    let endpoints: ProxyEndpoints | undefined
    let headerDone = proxy === undefined
    let hello: Uint8Array = new Uint8Array(0)
    const timer = setTimeout(() => refuse('PROXY header or ClientHello timeout'), CLIENT_HELLO_TIMEOUT_MS)
    const refuse = (reason: string) => {
      logger.debug('l4: connection refused', { port, reason, client: socket.remoteAddress })
      socket.off('data', onData)
      clearTimeout(timer)
      socket.destroy()
    }
    const onData = (chunk: Buffer) => {
      let bytes: Uint8Array = chunk
      if (!headerDone) {
        const result = reader.feed(chunk)
        if (result.kind === 'incomplete') return
        if (result.kind === 'invalid') return refuse(result.reason)
        headerDone = true
        const addresses = result.header?.addresses
        if (addresses) endpoints = addresses
        bytes = result.rest
        if (bytes.byteLength === 0) return
      }
      hello = hello.byteLength === 0 ? Uint8Array.from(bytes) : Buffer.concat([hello, bytes])
      const parsed = parseClientHello(hello)
      if (parsed.kind === 'incomplete') {
        if (hello.byteLength > MAX_CLIENT_HELLO_BYTES + 20) refuse('ClientHello too large')
        return
      }
      if (parsed.kind === 'invalid') return refuse(`not a TLS ClientHello: ${parsed.reason}`)
      const serverName = parsed.serverName === undefined ? undefined : normalise(parsed.serverName)
      const plan = this.options.currentPlan()
      const route = plan?.sni.match(serverName) ?? (serverName === undefined ? plan?.routes[0] : undefined)
      if (route && !route.tls) {
        // Passthrough: the client's TLS goes to the backend as it came, ClientHello first.
        socket.off('data', onData)
        socket.off('end', onEnd)
        clearTimeout(timer)
        socket.pause()
        this.#forward(socket, endpoints, serverName, hello)
        return
      }
      const context = route?.tls?.contextFor(serverName)
      if (!context) return refuse(`no TLSRoute certificate for ${serverName ?? '(no SNI)'}`)
      socket.off('data', onData)
      socket.off('end', onEnd)
      clearTimeout(timer)
      const client = new TLSSocket(replaying(socket, hello) as unknown as NetSocket, { isServer: true, secureContext: context })
      client.on('error', (error) => logger.debug('l4: TLS handshake failed', { port, error: error.message }))
      client.once('secure', () => this.#accept(client, endpoints ?? socketEndpoints(socket)))
    }
    const onEnd = () => refuse('connection ended before the ClientHello')
    socket.on('data', onData)
    socket.once('end', onEnd)
  }

  /** `endpoints`: the client as its PROXY header said (undefined: the TLS socket's own peer). */
  #accept(client: TLSSocket, endpoints: ProxyEndpoints | undefined): void {
    this.#track(client)
    client.on('error', (error) => this.options.logger.debug('l4: TLS client error', { port: this.options.port, error: error.message }))
    const serverName = typeof client.servername === 'string' ? normalise(client.servername) : undefined
    this.#forward(client, endpoints, serverName, undefined)
  }

  /**
   * Connects the route's backend and joins the two. `client` is the decrypted TLS socket, or (with
   * `head`, the ClientHello already read) the raw socket of a Passthrough route on a mixed port.
   */
  #forward(client: NetSocket, endpoints: ProxyEndpoints | undefined, serverName: string | undefined, head: Uint8Array | undefined): void {
    const { logger, registry, port } = this.options
    const plan = this.options.currentPlan()
    const route = plan?.sni.match(serverName) ?? (head && serverName === undefined ? plan?.routes[0] : undefined)
    const choice = route?.backends.choose(endpoints?.sourceAddress ?? client.remoteAddress ?? '')
    if (!route || !choice || choice.kind === 'reject') {
      logger.debug('l4: terminated connection rejected', { port, serverName, reason: choice?.kind === 'reject' ? choice.reason : 'no route' })
      client.destroy()
      return
    }
    const state = choice.member.state
    const raw = connect({ host: state.address, port: state.port, allowHalfOpen: true, noDelay: true })
    this.#track(raw)
    // Queued until connected, ahead of every client byte (and, when re-encrypting, of the handshake).
    if (route.proxyProtocol) raw.write(buildProxyHeader(route.proxyProtocol, endpoints ?? socketEndpoints(client)))
    if (head) raw.write(head)
    // BackendTLSPolicy: TLS again to the backend, verified against the policy's CA (or the system
    // store), SNI = its hostname, and its subjectAltNames when listed. A failed verification
    // closes the client; nothing is ever sent in plaintext.
    const upstream = head ? undefined : choice.tls
    const backend: NetSocket = upstream
      ? tlsConnect({
          socket: raw,
          servername: upstream.serverName,
          ...(upstream.ca ? { ca: upstream.ca } : {}),
          ...(upstream.checkServerIdentity ? { checkServerIdentity: upstream.checkServerIdentity } : {}),
          rejectUnauthorized: true,
          allowHalfOpen: true,
        } as Parameters<typeof tlsConnect>[0])
      : raw
    if (backend !== raw) {
      this.#track(backend)
      backend.once('close', () => raw.destroy())
      raw.once('close', () => backend.destroy())
    }
    const timer = setTimeout(() => {
      logger.debug('l4: backend connect timed out', { port, route: route.id, endpoint: state.key })
      backend.destroy()
      client.destroy()
    }, this.options.connectTimeoutMs)
    let counted = false
    // The endpoint answered (TCP); when re-encrypting, the connect timeout also covers the handshake.
    raw.once('connect', () => {
      if (!upstream) clearTimeout(timer)
      state.inFlight++
      counted = true
      registry.recordSuccess(state)
    })
    if (upstream) backend.once('secureConnect', () => clearTimeout(timer))
    raw.on('error', (error) => {
      if (!counted) registry.recordFailure(state)
      logger.debug('l4: backend error', { port, route: route.id, endpoint: state.key, error: error.message })
    })
    if (backend !== raw) backend.on('error', (error) => logger.debug('l4: backend TLS error', { port, route: route.id, endpoint: state.key, error: error.message }))
    raw.once('close', () => {
      clearTimeout(timer)
      if (counted) state.inFlight--
    })
    // The port's ClientTrafficPolicy idle timeout as of this accept, else the global one.
    const idleTimeoutMs = plan?.connection?.idleTimeoutMs ?? this.options.idleTimeoutMs
    if (idleTimeoutMs > 0) {
      // node:net's timer counts reads and writes on the client socket: both directions.
      client.setTimeout(idleTimeoutMs, () => {
        logger.debug('l4: idle timeout', { port, route: route.id, idleTimeoutMs })
        backend.destroy()
        client.destroy()
      })
    }
    const connection: Terminated = { client, backend, routeId: route.id, endpoint: state.key }
    this.#connections.add(connection)
    client.once('close', () => this.#connections.delete(connection))
    client.pipe(backend)
    backend.pipe(client)
    if (head) client.resume()
    joinClose(client, backend)
    joinClose(backend, client)
  }

  #track(socket: NetSocket): void {
    this.#open.add(socket)
    socket.once('close', () => this.#open.delete(socket))
  }
}

function socketEndpoints(socket: NetSocket): ProxyEndpoints {
  return {
    sourceAddress: socket.remoteAddress ?? '',
    sourcePort: socket.remotePort ?? 0,
    destinationAddress: socket.localAddress ?? '',
    destinationPort: socket.localPort ?? 0,
  }
}

/** A stream that yields `head`, then whatever `socket` reads; writes go to `socket`. Backpressure both ways. */
function replaying(socket: NetSocket, head: Uint8Array): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume()
    },
    write(chunk, _encoding, done) {
      socket.write(chunk, done)
    },
    final(done) {
      socket.end()
      done()
    },
    destroy(error, done) {
      socket.destroy()
      done(error)
    },
  })
  stream.push(head)
  socket.on('data', (chunk) => {
    if (!stream.push(chunk)) socket.pause()
  })
  socket.on('end', () => stream.push(null))
  socket.on('close', () => stream.destroy())
  return stream
}

/** When `from` closes: on error tear `to` down now; otherwise let it finish writing, then end it. */
function joinClose(from: NetSocket, to: NetSocket): void {
  from.once('close', (hadError) => {
    if (to.destroyed) return
    if (hadError || !from.readableEnded) {
      to.destroy()
      return
    }
    to.end()
    setTimeout(() => to.destroy(), HALF_CLOSED_LINGER_MS).unref()
  })
}

function normalise(serverName: string): string | undefined {
  if (!serverName) return undefined
  const lower = serverName.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}
