/**
 * TLSRoute on a Terminate listener: node:tls decrypts, the plaintext goes to a plain TCP backend.
 *
 * node:tls rather than Bun.listen({tls}) because only node:tls offers SNICallback in Bun, and the
 * callback reads the current plan, so certificate and route changes never touch the socket.
 * Streams are joined with pipe(), which bounds buffering with highWaterMark in both directions.
 */
import { connect, type Socket as NetSocket } from 'node:net'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import type { Logger } from '../log.ts'
import type { EndpointRegistry } from '../upstream/registry.ts'
import { survives, type PortPlan } from './plan.ts'

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
  readonly client: TLSSocket
  readonly backend: NetSocket
  readonly routeId: string
  readonly endpoint: string
}

export class TerminateListener {
  readonly #server: Server
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
    this.#server.on('secureConnection', (socket) => this.#accept(socket))
    this.#server.on('tlsClientError', (error) => options.logger.debug('l4: TLS handshake failed', { port: options.port, error: error.message }))
  }

  /** Rejects when the port cannot be bound. */
  static async listen(options: TerminateListenerOptions): Promise<TerminateListener> {
    const listener = new TerminateListener(options)
    await new Promise<void>((resolve, reject) => {
      listener.#server.once('error', reject)
      listener.#server.listen(options.port, options.hostname, () => {
        listener.#server.off('error', reject)
        resolve()
      })
    })
    listener.#server.on('error', (error) => options.logger.warn('l4: TLS listener error', { port: options.port, error: error.message }))
    listener.refresh()
    return listener
  }

  /** Serve the fallback route's certificate to clients that send no SNI (SNICallback is not called then). */
  refresh(): void {
    const pems = this.options.currentPlan()?.sni.match(undefined)?.tls?.defaultPems
      ?? this.options.currentPlan()?.routes[0]?.tls?.defaultPems
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
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    if (closeActive) for (const socket of this.#open) socket.destroy()
    return closed
  }

  #accept(client: TLSSocket): void {
    const { logger, registry, port } = this.options
    this.#track(client)
    client.on('error', (error) => logger.debug('l4: TLS client error', { port, error: error.message }))
    const serverName = typeof client.servername === 'string' ? normalise(client.servername) : undefined
    const route = this.options.currentPlan()?.sni.match(serverName)
    const choice = route?.backends.choose(client.remoteAddress ?? '')
    if (!route || !choice || choice.kind === 'reject') {
      logger.debug('l4: terminated connection rejected', { port, serverName, reason: choice?.kind === 'reject' ? choice.reason : 'no route' })
      client.destroy()
      return
    }
    const state = choice.member.state
    const backend = connect({ host: state.address, port: state.port, allowHalfOpen: true, noDelay: true })
    this.#track(backend)
    const timer = setTimeout(() => {
      logger.debug('l4: backend connect timed out', { port, route: route.id, endpoint: state.key })
      backend.destroy()
      client.destroy()
    }, this.options.connectTimeoutMs)
    let counted = false
    backend.once('connect', () => {
      clearTimeout(timer)
      state.inFlight++
      counted = true
      registry.recordSuccess(state)
    })
    backend.on('error', (error) => {
      if (!counted) registry.recordFailure(state)
      logger.debug('l4: backend error', { port, route: route.id, endpoint: state.key, error: error.message })
    })
    backend.once('close', () => {
      clearTimeout(timer)
      if (counted) state.inFlight--
    })
    if (this.options.idleTimeoutMs > 0) {
      // node:net's timer counts reads and writes on the client socket: both directions.
      client.setTimeout(this.options.idleTimeoutMs, () => {
        logger.debug('l4: idle timeout', { port, route: route.id, idleTimeoutMs: this.options.idleTimeoutMs })
        backend.destroy()
        client.destroy()
      })
    }
    const connection: Terminated = { client, backend, routeId: route.id, endpoint: state.key }
    this.#connections.add(connection)
    client.once('close', () => this.#connections.delete(connection))
    client.pipe(backend)
    backend.pipe(client)
    joinClose(client, backend)
    joinClose(backend, client)
  }

  #track(socket: NetSocket): void {
    this.#open.add(socket)
    socket.once('close', () => this.#open.delete(socket))
  }
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
