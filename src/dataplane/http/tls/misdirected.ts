/**
 * 421 Misdirected Request (RFC 9110 §15.5.20): a client may reuse a TLS connection for another
 * host its certificate covers (HTTP/2 connection coalescing, or a client that sets Host and SNI
 * independently). When the SNI chose one listener on a port and the Host header chooses another,
 * the request went through the wrong listener's TLS settings (certificate, client validation),
 * so it is refused and the client retries on a new connection.
 */
import type { PortRouter, MatchableRule } from '../match.ts'

/**
 * True when `serverName` (the connection's SNI) selects a listener and `host` (the request's
 * Host, normalised) does not select that same listener. Without SNI, or with an SNI no listener
 * claims (the default certificate answered), the Host header decides alone.
 */
export function isMisdirected<R extends MatchableRule>(router: PortRouter<R>, serverName: string | undefined, host: string): boolean {
  if (!serverName || router.listeners.length < 2) return false
  const bySni = router.listenerFor(serverName)
  if (!bySni) return false
  return router.listenerFor(host) !== bySni
}
