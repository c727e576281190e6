/**
 * TLS passthrough: hold the client's first bytes until the ClientHello is complete, route on its
 * SNI, then replay those bytes to the chosen backend and splice. TLS is never terminated here.
 */
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello.ts'
import type { ProxyConnection } from './connection.ts'

/** A client that has not finished its ClientHello by then is dropped (slowloris guard). */
export const CLIENT_HELLO_TIMEOUT_MS = 10_000

export function startSniffing(connection: ProxyConnection): void {
  connection.armTimer(CLIENT_HELLO_TIMEOUT_MS, 'ClientHello')
}

/** Bytes from a client whose ClientHello is still being read. */
export function sniff(connection: ProxyConnection, chunk: Uint8Array): void {
  connection.sniffed.push(chunk)
  connection.sniffedBytes += chunk.length
  // The cap also bounds memory: a hello is validated against MAX_CLIENT_HELLO_BYTES as it is parsed.
  const buffered = connection.sniffed.length === 1 ? chunk : Buffer.concat(connection.sniffed)
  connection.sniffed = [buffered]
  const hello = parseClientHello(buffered)
  const { logger } = connection.deps
  const port = connection.portPlan.port
  if (hello.kind === 'incomplete') {
    if (connection.sniffedBytes > MAX_CLIENT_HELLO_BYTES + 5 * 4) {
      logger.debug('l4: ClientHello too large', { port, bytes: connection.sniffedBytes })
      connection.close()
    }
    return
  }
  if (hello.kind === 'invalid') {
    logger.debug('l4: not a TLS ClientHello', { port, reason: hello.reason, client: connection.clientIp })
    connection.close()
    return
  }
  const route = connection.portPlan.sni.match(hello.serverName)
  if (!route) {
    logger.debug('l4: no TLSRoute for server name', { port, serverName: hello.serverName ?? null })
    connection.close()
    return
  }
  connection.clearTimer()
  connection.sniffed = []
  connection.splice.backend.outbox.push(buffered)
  connection.connect(route)
}
