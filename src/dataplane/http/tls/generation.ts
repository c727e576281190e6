/**
 * One certificate generation of an HTTPS port: a Bun.serve bound to loopback that terminates TLS
 * (HTTP/1.1, and h2 through ALPN) with one fixed set of certificates.
 *
 * Bun cannot change a server's certificates (server.reload ignores them), so a rotation starts a
 * new generation and the port's TLS front sends new connections there. The old generation keeps
 * serving the connections it already has and stops when the last one closes; its listening
 * socket stays open until then, so nothing ever sits in a closing accept queue.
 */
import type { Server } from 'bun'

/** What the TLS front knows about a client connection and the inner server cannot see. */
export interface TlsPeer {
  /** The socket's peer, or the source of its PROXY protocol header (set before any byte is relayed). */
  clientIp: string
  /** SNI from the ClientHello (lower-case); undefined when the client sent none. */
  serverName: string | undefined
}

export class TlsGeneration {
  /** Peers by the front's local port on the loopback connection (what requestIP() reports). */
  readonly #peers = new Map<number, TlsPeer>()
  #connections = 0
  #retired = false
  #stopped: Promise<void> | undefined

  constructor(
    readonly server: Server<undefined>,
    /** Identifies the certificates this generation serves. */
    readonly fingerprint: string,
  ) {}

  get port(): number {
    return this.server.port!
  }

  get connections(): number {
    return this.#connections
  }

  peerAt(localPort: number | undefined): TlsPeer | undefined {
    return localPort === undefined ? undefined : this.#peers.get(localPort)
  }

  /** A front connection was pinned to this generation (before its loopback connect). */
  opened(): void {
    this.#connections++
  }

  attach(localPort: number, peer: TlsPeer): void {
    this.#peers.set(localPort, peer)
  }

  /** The front connection is gone; `localPort` is undefined when the loopback connect never opened. */
  closed(localPort: number | undefined): void {
    if (localPort !== undefined) this.#peers.delete(localPort)
    this.#connections--
    if (this.#retired && this.#connections === 0) void this.stop(true)
  }

  /** No new connections will come; stop once the current ones are done. */
  retire(): void {
    this.#retired = true
    if (this.#connections === 0) void this.stop(true)
  }

  stop(force: boolean): Promise<void> {
    this.#stopped ??= this.server.stop(force).catch(() => {})
    return this.#stopped
  }
}
