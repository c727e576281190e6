/**
 * The public socket of an HTTPS port: a plain TCP listener that never terminates TLS itself.
 *
 * Each client connection is spliced, bytes unchanged, to the port's current certificate
 * generation (a Bun.serve on loopback that does the TLS, HTTP/1.1, h2 and WebSocket work). On the
 * way it reads the SNI out of the ClientHello and records it, with the client's address, under
 * the loopback connection's local port, which the inner server sees as the peer port. That gives
 * the request handler what Bun.serve alone cannot: the SNI (for 421) and the real client IP.
 *
 * Because this socket never closes during a certificate rotation, a rotation cannot reset a
 * connection waiting in an accept queue (what a reusePort swap of Bun.serve does under load).
 *
 * The port's ClientTrafficPolicy settings (`settings`, read at each accept) add two things here:
 * PROXY protocol, whose header comes before the ClientHello and is removed before anything is
 * relayed (its source becomes the peer's client address), and maxConnections.
 */
import type { Socket, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from 'bun'
import type { Logger } from '../../log.ts'
import type { ConnectionSettings } from '../../../policy/kind.ts'
import { ProxyHeaderReader } from '../../proxy-protocol.ts'
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../l4/client-hello.ts'
import { Splice } from '../../l4/splice.ts'
import type { TlsGeneration, TlsPeer } from './generation.ts'

const LOOPBACK = '127.0.0.1'
/** A PROXY protocol header must be complete within this long after accept. */
export const PROXY_HEADER_TIMEOUT_MS = 10_000

export interface TlsFrontOptions {
  readonly hostname: string
  readonly port: number
  readonly reusePort: boolean
  readonly logger: Logger
  /** The port's connection settings at start; HttpsPort.update keeps `TlsFront.settings` current. */
  readonly settings?: ConnectionSettings
}

class FrontConnection {
  readonly splice: Splice
  readonly peer: TlsPeer
  /** ClientHello bytes seen so far; undefined once the SNI is known (or will never be). */
  hello: Uint8Array | undefined = new Uint8Array(0)
  localPort: number | undefined
  /** Set while a PROXY protocol header is expected (ports that ask for one only). */
  proxy: ProxyHeaderReader | undefined
  #proxyTimer: Timer | undefined

  constructor(
    readonly client: Socket<FrontConnection>,
    readonly generation: TlsGeneration,
    readonly live: Set<FrontConnection>,
  ) {
    this.peer = { clientIp: client.remoteAddress, serverName: undefined }
    this.splice = new Splice(() => {
      live.delete(this)
      generation.closed(this.localPort)
      if (this.#proxyTimer) clearTimeout(this.#proxyTimer)
    })
    this.splice.client.socket = client
    live.add(this)
    generation.opened()
  }

  expectProxyHeader(optional: boolean, logger: Logger): void {
    this.proxy = new ProxyHeaderReader(optional)
    this.#proxyTimer = setTimeout(() => {
      logger.debug('https front: PROXY protocol header timeout', { client: this.client.remoteAddress })
      this.splice.finish()
    }, PROXY_HEADER_TIMEOUT_MS)
  }

  /** Bytes while the PROXY header is read: what follows it (undefined: nothing yet, or the connection was closed). */
  readProxyHeader(chunk: Uint8Array, logger: Logger): Uint8Array | undefined {
    const result = this.proxy!.feed(chunk)
    if (result.kind === 'incomplete') return undefined
    this.proxy = undefined
    clearTimeout(this.#proxyTimer)
    this.#proxyTimer = undefined
    if (result.kind === 'invalid') {
      logger.debug('https front: connection refused', { reason: result.reason, client: this.client.remoteAddress })
      this.splice.finish()
      return undefined
    }
    const source = result.header?.addresses?.sourceAddress
    if (source !== undefined) this.peer.clientIp = source
    return result.rest.byteLength > 0 ? result.rest : undefined
  }

  /** Read the SNI from the first bytes. Runs before they are relayed, so the inner server cannot finish a handshake (and see a request) first. */
  sniff(chunk: Uint8Array): void {
    const buffered = this.hello!.length === 0 ? chunk : Buffer.concat([this.hello!, chunk])
    const hello = parseClientHello(buffered)
    if (hello.kind === 'incomplete' && buffered.length <= MAX_CLIENT_HELLO_BYTES + 20) {
      this.hello = Uint8Array.from(buffered)
      return
    }
    // Not TLS, or oversized: the inner TLS server rejects it; we only stop looking.
    if (hello.kind === 'complete') this.peer.serverName = hello.serverName
    this.hello = undefined
  }
}

export class TlsFront {
  readonly #listener: TCPSocketListener<FrontConnection>
  readonly #live = new Set<FrontConnection>()
  readonly #logger: Logger
  /** Where new connections go; swapped by a certificate rotation. */
  current: TlsGeneration
  /** The port's ClientTrafficPolicy connection settings, read at each accept. */
  settings: ConnectionSettings | undefined

  /** Throws when the port cannot be bound (the caller reports it). */
  constructor(options: TlsFrontOptions, initial: TlsGeneration) {
    this.current = initial
    this.settings = options.settings
    this.#logger = options.logger
    // Bun.listen honours reusePort at runtime (verified in 1.4.5) but its types omit it.
    const listenOptions: TCPSocketListenOptions<FrontConnection> & { reusePort?: boolean; allowHalfOpen?: boolean } = {
      hostname: options.hostname,
      port: options.port,
      reusePort: options.reusePort,
      allowHalfOpen: true,
      socket: this.#clientHandlers(),
    }
    this.#listener = Bun.listen<FrontConnection>(listenOptions)
  }

  get port(): number {
    return this.#listener.port
  }

  get connections(): number {
    return this.#live.size
  }

  /** Stop accepting. Open connections keep going (their generation serves them). */
  close(): void {
    this.#listener.stop(false)
  }

  /** Close every open connection now. */
  closeAll(): void {
    for (const connection of [...this.#live]) connection.splice.finish()
  }

  #connectInner(connection: FrontConnection): void {
    Bun.connect<FrontConnection>({
      hostname: LOOPBACK,
      port: connection.generation.port,
      allowHalfOpen: true,
      data: connection,
      socket: innerHandlers,
    }).catch(() => {
      // connectError has closed the client already.
    })
  }

  #clientHandlers(): SocketHandler<FrontConnection> {
    const logger = this.#logger
    return {
      open: (socket) => {
        const settings = this.settings
        // Per worker; over it the connection is closed before any byte is read.
        if (settings?.maxConnections !== undefined && this.#live.size >= settings.maxConnections) {
          socket.end()
          return
        }
        socket.setNoDelay(true)
        const connection = new FrontConnection(socket, this.current, this.#live)
        socket.data = connection
        if (settings?.proxyProtocol) connection.expectProxyHeader(settings.proxyProtocol.optional, logger)
        this.#connectInner(connection)
      },
      data(socket, chunk) {
        const connection = socket.data
        let bytes: Uint8Array = chunk
        // Only until the SNI is known: later chunks take the relay straight away.
        if (connection.hello) {
          if (connection.proxy) {
            const rest = connection.readProxyHeader(chunk, logger)
            if (rest === undefined) return
            bytes = rest
          }
          connection.sniff(bytes)
        }
        connection.splice.relay(connection.splice.client, bytes)
      },
      drain(socket) {
        socket.data.splice.writable(socket.data.splice.client)
      },
      end(socket) {
        // Refused at accept (connection limit): no data.
        socket.data?.splice.ended(socket.data.splice.client)
      },
      close(socket) {
        socket.data?.splice.closed(socket.data.splice.client)
      },
      error(_socket, error) {
        logger.debug('https front: client socket error', { error: error.message })
      },
    }
  }
}

const innerHandlers: SocketHandler<FrontConnection> = {
  open(socket) {
    const connection = socket.data
    if (connection.splice.finished) {
      socket.end()
      return
    }
    socket.setNoDelay(true)
    connection.localPort = socket.localPort
    connection.generation.attach(socket.localPort, connection.peer)
    connection.splice.backend.socket = socket
    connection.splice.writable(connection.splice.backend)
  },
  connectError(socket) {
    socket.data.splice.finish()
  },
  data(socket, chunk) {
    socket.data.splice.relay(socket.data.splice.backend, chunk)
  },
  drain(socket) {
    socket.data.splice.writable(socket.data.splice.backend)
  },
  end(socket) {
    socket.data.splice.ended(socket.data.splice.backend)
  },
  close(socket) {
    socket.data.splice.closed(socket.data.splice.backend)
  },
  error() {},
}
