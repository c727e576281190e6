/**
 * Stream listener for TCPRoute and TLS-passthrough ports: one Bun.listen per port.
 *
 * The handler reads the port's plan once, at accept, and the connection keeps that plan for its
 * whole life. So a snapshot swap changes where new connections go while open ones keep their
 * route (unless the swap removes that route or its endpoint: ProxyConnection.onPlan), and
 * switching a port between TCP and passthrough needs no new socket.
 *
 * The port's ClientTrafficPolicy settings are read at accept too: over maxConnections (per
 * worker) a connection is closed at once; with PROXY protocol the header is read before anything
 * else (before the backend connect on TCP, before the ClientHello on passthrough), and its source
 * becomes the client address (load balancing by client IP, the header sent on to backends).
 */
import type { Socket, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from 'bun'
import { ProxyConnection, type StreamDeps } from './connection.ts'
import type { PortPlan } from './plan.ts'
import { CLIENT_HELLO_TIMEOUT_MS, sniff, startSniffing } from './tls-passthrough.ts'
import { ProxyHeaderReader } from '../proxy-protocol.ts'

export interface StreamListenerOptions {
  readonly hostname: string
  readonly port: number
  /** Share the port with other processes/workers bound the same way (SO_REUSEPORT). */
  readonly reusePort?: boolean
  /** The port's current plan, or undefined when the port has just been removed. */
  readonly currentPlan: () => PortPlan | undefined
  readonly deps: StreamDeps
}

/** Throws when the port cannot be bound (EADDRINUSE, EACCES); the caller reports it. */
export function listenStream(options: StreamListenerOptions): TCPSocketListener<ProxyConnection> {
  // Bun.listen honours reusePort at runtime (verified in 1.4.5) but its types omit it.
  const listenOptions: TCPSocketListenOptions<ProxyConnection> & { reusePort?: boolean; allowHalfOpen?: boolean } = {
    hostname: options.hostname,
    port: options.port,
    reusePort: options.reusePort ?? false,
    allowHalfOpen: true,
    socket: clientHandlers(options),
  }
  return Bun.listen<ProxyConnection>(listenOptions)
}

function clientHandlers({ currentPlan, deps }: StreamListenerOptions): SocketHandler<ProxyConnection> {
  return {
    open(socket) {
      const plan = currentPlan()
      // A terminate plan here means this socket is about to be replaced by a node:tls listener.
      if (!plan || plan.routes.length === 0 || plan.mode === 'tls-terminate') {
        socket.end()
        return
      }
      const settings = plan.connection
      if (settings?.maxConnections !== undefined && deps.open.count >= settings.maxConnections) {
        deps.logger.debug('l4: connection limit reached', { port: plan.port, maxConnections: settings.maxConnections })
        socket.end()
        return
      }
      socket.setNoDelay(true)
      const connection = new ProxyConnection(socket, plan, deps)
      socket.data = connection
      if (settings?.proxyProtocol) {
        connection.proxy = new ProxyHeaderReader(settings.proxyProtocol.optional)
        connection.armTimer(CLIENT_HELLO_TIMEOUT_MS, 'PROXY protocol header')
      } else if (plan.mode === 'tls-passthrough') startSniffing(connection)
      // TCPRoute: only the first (oldest) route on a port receives traffic.
      else connection.connect(plan.routes[0]!)
    },
    data(socket, chunk) {
      const connection = connectionOf(socket)
      if (!connection) return
      if (connection.route !== undefined) connection.splice.relay(connection.splice.client, chunk)
      // Not routed yet: the PROXY header (ports that ask for one), then the ClientHello (passthrough).
      else if (connection.proxy) readProxyHeader(connection, chunk)
      else sniff(connection, chunk)
    },
    drain(socket) {
      const connection = connectionOf(socket)
      connection?.splice.writable(connection.splice.client)
    },
    end(socket) {
      const connection = connectionOf(socket)
      if (!connection) {
        socket.end()
        return
      }
      // A client that half-closes before its ClientHello is complete will never send one.
      if (connection.route === undefined) connection.close()
      else connection.splice.ended(connection.splice.client)
    },
    close(socket) {
      const connection = connectionOf(socket)
      connection?.splice.closed(connection.splice.client)
    },
    error(socket, error) {
      deps.logger.debug('l4: client socket error', { port: connectionOf(socket)?.portPlan.port, error: error.message })
    },
  }
}

/** Bytes while the PROXY header is read; once it is complete the connection goes on as if it had just opened. */
function readProxyHeader(connection: ProxyConnection, chunk: Uint8Array): void {
  const result = connection.proxy!.feed(chunk)
  if (result.kind === 'incomplete') return
  connection.proxy = undefined
  connection.clearTimer()
  if (result.kind === 'invalid') {
    connection.deps.logger.debug('l4: connection refused', { port: connection.portPlan.port, reason: result.reason, client: connection.clientIp })
    connection.close()
    return
  }
  const addresses = result.header?.addresses
  if (addresses) connection.endpoints = addresses
  // The plan may have changed while the header was read (ProxyConnection.onPlan keeps it current).
  const plan = connection.portPlan
  if (plan.mode === 'tls-passthrough') {
    startSniffing(connection)
    if (result.rest.byteLength > 0) sniff(connection, result.rest)
    return
  }
  const route = plan.routes[0]
  if (!route) return connection.close()
  connection.splice.backend.outbox.push(result.rest)
  connection.connect(route)
}

/** Sockets refused in open() carry no connection. */
function connectionOf(socket: Socket<ProxyConnection>): ProxyConnection | undefined {
  return socket.data as ProxyConnection | undefined
}
