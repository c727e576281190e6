/**
 * The start of a connection on an HTTPS port, before TLS: read the PROXY protocol header (ports
 * that ask for one), then the ClientHello, then start TLS on the same socket (Bun's server-side
 * upgradeTLS, handing it the bytes read so far) with the context the SNI selects. From there the
 * connection is a ClientConnection like on a plain port: the same HTTP/1.1 parser, the same
 * direct path; h2 (ALPN) reaches the inner Bun.serve as h2c through the connection's tunnel.
 *
 * Why not Bun.listen's own `tls`: its default certificate cannot be changed on a live listener
 * (certificate rotation would need a second listener and would reset what waits in the old
 * one's accept queue), and a PROXY header or a plain-HTTP request would reach the TLS engine as
 * garbage. Reading the first bytes here costs one callback per connection; measured in README.
 */
import type { Socket, SocketHandler } from 'bun'
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../l4/client-hello.ts'
import { ProxyHeaderReader } from '../../proxy-protocol.ts'
import type { TlsContexts } from '../tls/contexts.ts'
import { ClientConnection } from './client-connection.ts'
import type { FrontContext } from './context.ts'

const TLS_HANDSHAKE_RECORD = 0x16
/** How long the PROXY header and ClientHello may take when the port sets no header timeout. */
const HELLO_TIMEOUT_MS = 10_000

const PLAIN_HTTP_BODY = 'This port speaks HTTPS: a plain HTTP request was sent to it. Use https:// for this address.\n'
/** What nginx does for a plain request on an SSL port: a 400 saying so, then close. */
export const PLAIN_HTTP_ANSWER = `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${PLAIN_HTTP_BODY.length}\r\nconnection: close\r\n\r\n${PLAIN_HTTP_BODY}`

/** What the front gives a handshake: the contexts current at its ClientHello (rotation swaps them). */
export interface TlsSource {
  current(): TlsContexts
}

/** Events of the TLS socket after the upgrade: the connection (or, until it exists, the handshake) gets them. */
interface TlsSocketData {
  /** The peer address holding a slot in the connection gate, until released (once). */
  admitted: string | undefined
  readonly ctx: FrontContext
  onData(data: Uint8Array): void
  onDrain(): void
  onEnd(): void
  onClose(): void
  onFailure(err: unknown): void
}

export const TLS_HANDLERS: SocketHandler<TlsSocketData> = {
  data(socket, data) {
    try {
      socket.data.onData(data)
    } catch (err) {
      socket.data.onFailure(err)
    }
  },
  drain(socket) {
    try {
      socket.data.onDrain()
    } catch (err) {
      socket.data.onFailure(err)
    }
  },
  end(socket) {
    try {
      socket.data.onEnd()
    } catch (err) {
      socket.data.onFailure(err)
    }
  },
  close(socket) {
    closed(socket.data)
  },
  error(socket) {
    closed(socket.data)
  },
  handshake(socket, success, verifyError) {
    const conn = socket.data
    if (!(conn instanceof ClientConnection)) return
    // Frontend mTLS (AllowValidOnly): no valid client certificate, no request.
    if (!success || (conn.requireClientCert && verifyError)) {
      conn.forceClose()
      socket.terminate()
    }
  },
}

/** Close and error both end a socket: the gate slot is given back once (as http-front.ts does for plain sockets). */
function closed(conn: TlsSocketData | undefined): void {
  if (conn === undefined) return
  const ip = conn.admitted
  if (ip !== undefined) {
    conn.admitted = undefined
    conn.ctx.gate.release(ip)
  }
  conn.onClose()
}

export class TlsHandshake {
  readonly isLongLived = false
  /** The peer address this connection holds a gate slot for, handed to its ClientConnection at the upgrade. */
  admitted: string | undefined
  #proxy: ProxyHeaderReader | undefined
  #hello: Uint8Array | undefined
  #clientIp: string | undefined
  readonly #deadline: number
  /** Upgraded (or refused): the raw socket's later events are not ours. */
  #done = false

  constructor(
    readonly socket: Socket<unknown>,
    readonly ctx: FrontContext,
    readonly tls: TlsSource,
    proxyOptional: boolean | undefined,
    readonly connections: Set<unknown>,
  ) {
    if (proxyOptional !== undefined) this.#proxy = new ProxyHeaderReader(proxyOptional)
    this.#deadline = Date.now() + (ctx.limits.headerTimeoutMs > 0 ? ctx.limits.headerTimeoutMs : HELLO_TIMEOUT_MS)
  }

  onData(data: Uint8Array): void {
    if (this.#done) return
    let bytes = data
    if (this.#proxy) {
      const result = this.#proxy.feed(data)
      if (result.kind === 'incomplete') return
      this.#proxy = undefined
      if (result.kind === 'invalid') return this.#refuse(result.reason)
      this.#clientIp = result.header?.addresses?.sourceAddress
      if (result.rest.byteLength === 0) return
      bytes = result.rest
    }
    const buffered = this.#hello ? Buffer.concat([this.#hello, bytes]) : bytes
    if (buffered[0] !== TLS_HANDSHAKE_RECORD) return this.#plainHttp(buffered)
    const hello = parseClientHello(buffered)
    if (hello.kind === 'incomplete') {
      if (buffered.byteLength > MAX_CLIENT_HELLO_BYTES + 64) return this.#refuse('ClientHello too large')
      // The reader's chunk may be reused by Bun after this callback: keep a copy.
      this.#hello = Uint8Array.from(buffered)
      return
    }
    if (hello.kind === 'invalid') return this.#refuse(`not a TLS ClientHello: ${hello.reason}`)
    this.#upgrade(buffered, hello.serverName)
  }

  #upgrade(initialData: Uint8Array, serverName: string | undefined): void {
    this.#done = true
    this.#hello = undefined
    const contexts = this.tls.current()
    const chosen = contexts.forServerName(serverName)
    const upgradeOptions = {
      isServer: true,
      initialData,
      data: this as TlsSocketData,
      socket: TLS_HANDLERS,
      tls: {
        secureContext: chosen.native,
        requestCert: chosen.requestCert,
        rejectUnauthorized: chosen.rejectUnauthorized,
        ALPNProtocols: contexts.alpnWire,
      },
    }
    // Bun's server-side upgrade (what node:tls uses); `isServer` and `initialData` are not in its types.
    const [, secure] = this.socket.upgradeTLS(upgradeOptions as unknown as Parameters<Socket<unknown>['upgradeTLS']>[0]) as unknown as [Socket<unknown>, Socket<TlsSocketData>]
    const conn = new ClientConnection(secure as unknown as Socket<ClientConnection>, this.ctx, this.#clientIp ?? this.socket.remoteAddress, serverName, chosen.rejectUnauthorized)
    conn.admitted = this.admitted
    this.admitted = undefined
    secure.data = conn
    this.connections.delete(this)
    this.connections.add(conn)
    if (this.ctx.draining) conn.drain()
  }

  /** Plain HTTP on the HTTPS port: say so (an HTTP client shows it), then close. */
  #plainHttp(buffered: Uint8Array): void {
    const first = buffered[0]!
    // Only what starts like a request line gets an HTTP answer; anything else is just closed.
    if (first >= 0x41 && first <= 0x5a) {
      this.#done = true
      this.connections.delete(this)
      this.socket.end(PLAIN_HTTP_ANSWER)
      return
    }
    this.#refuse('neither TLS nor HTTP')
  }

  // Events of the raw socket (and of the TLS socket until its connection exists).
  onDrain(): void {}

  onEnd(): void {
    if (!this.#done) this.#refuse('connection ended before the TLS handshake')
  }

  onClose(): void {
    if (this.#done) return
    this.#done = true
    this.connections.delete(this)
  }

  onFailure(err: unknown): void {
    this.ctx.logger.error('https front: connection failed', { port: this.ctx.irPort, error: err instanceof Error ? err.message : String(err) })
    this.forceClose()
  }

  onPlan(): void {}

  sweep(now: number): void {
    if (!this.#done && now > this.#deadline) this.#refuse('TLS ClientHello timeout')
  }

  drain(): void {
    if (!this.#done) this.forceClose()
  }

  forceClose(): void {
    this.#done = true
    this.connections.delete(this)
    this.socket.end()
  }

  #refuse(reason: string): void {
    this.ctx.logger.debug('https front: connection refused', { port: this.ctx.irPort, reason, client: this.socket.remoteAddress })
    this.forceClose()
  }
}
