/**
 * Header hygiene between client and upstream, for every path: hop-by-hop stripping and the
 * forwarding fields (X-Forwarded-For/Proto/Host, Forwarded, X-Request-Id). The front's direct
 * path and the pipeline's HTTP/1.1 client write them as lines (forwardingLines), fetch, h2c,
 * WebSocket and mirrors on a Headers copy (setUpstreamFields): one set of rules either way.
 * The address appended is always the TCP peer, whatever clientIPDetection decided.
 */

/** RFC 9110 §7.6.1 plus the legacy Proxy-Connection and Keep-Alive: the one list every path uses. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/** Request fields a proxy rewrites with its own hop appended (setForwardingHeaders, the front). */
export const FORWARDING_FIELDS: readonly string[] = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']

/** Never copied from the client to the upstream head: hop-by-hop, framing (re-added as received), and the fields we rewrite. */
export const DROPPED_REQUEST_FIELDS: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'host', 'content-length', ...FORWARDING_FIELDS])

/** Remove hop-by-hop headers and every header the Connection header nominates. Neither Bun.serve nor fetch does this. */
export function stripHopByHop(headers: Headers): void {
  const connection = headers.get('connection')
  if (connection) {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase()
      // Headers.delete throws on a name that is not a token ("upgrad\xb7" from a fuzzer): no such header exists anyway.
      if (name && isToken(name)) headers.delete(name)
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name)
}

/** Field names a Connection header nominates, beyond keep-alive/close (RFC 9110 §7.6.1); undefined when none. */
export function nominatedFields(connection: string): Set<string> | undefined {
  const lower = connection.toLowerCase()
  if (lower === 'keep-alive' || lower === 'close') return undefined
  let names: Set<string> | undefined
  for (const token of lower.split(',')) {
    const name = token.trim()
    if (name && name !== 'keep-alive' && name !== 'close') (names ??= new Set()).add(name)
  }
  return names
}

/**
 * Our forwarding lines: X-Forwarded-For and Forwarded appended to what the client sent (`xff`,
 * `forwarded`, undefined when absent), X-Forwarded-Proto and X-Forwarded-Host replaced.
 * `element` is forwardedElement(peerIp, scheme, host) (callers cache it per connection).
 */
export function forwardingLines(xff: string | undefined, forwarded: string | undefined, peerIp: string, scheme: string, host: string, element: string): string {
  let lines = peerIp ? `x-forwarded-for: ${xff ? `${xff}, ${peerIp}` : peerIp}\r\n` : ''
  lines += `x-forwarded-proto: ${scheme}\r\n`
  if (host) lines += `x-forwarded-host: ${host}\r\n`
  return `${lines}forwarded: ${forwarded ? `${forwarded}, ${element}` : element}\r\n`
}

/** A generated X-Request-Id line (when none goes upstream and requestID allows it). */
export function requestIdLine(): string {
  return `x-request-id: ${crypto.randomUUID()}\r\n`
}

/** What setUpstreamFields reads of a request (RequestState). */
export interface UpstreamFieldsSource {
  /** Host to send upstream. */
  readonly authority: string
  readonly peerIp: string
  readonly scheme: string
  readonly generateRequestId: boolean
  readonly req: { readonly headers: Headers }
}

/**
 * Host, the forwarding fields and X-Request-Id on an upstream Headers copy (hop-by-hop already
 * stripped): the same values forwardingLines writes.
 */
export function setUpstreamFields(headers: Headers, src: UpstreamFieldsSource): void {
  const originalHost = src.req.headers.get('host') ?? ''
  headers.set('host', src.authority)
  const peerIp = src.peerIp
  if (peerIp) {
    const xff = headers.get('x-forwarded-for')
    headers.set('x-forwarded-for', xff ? `${xff}, ${peerIp}` : peerIp)
  }
  headers.set('x-forwarded-proto', src.scheme)
  if (originalHost) headers.set('x-forwarded-host', originalHost)
  const element = forwardedElement(peerIp, src.scheme, originalHost)
  const forwarded = headers.get('forwarded')
  headers.set('forwarded', forwarded ? `${forwarded}, ${element}` : element)
  if (src.generateRequestId && !headers.has('x-request-id')) headers.set('x-request-id', crypto.randomUUID())
}

/** RFC 7239 element: IPv6 and host:port must be quoted. */
export function forwardedElement(clientIp: string, scheme: string, host: string): string {
  let element = ''
  if (clientIp) element = clientIp.includes(':') ? `for="[${clientIp}]"` : `for=${clientIp}`
  if (host) element += `${element ? ';' : ''}host=${isToken(host) ? host : `"${host.replace(/["\\]/g, '\\$&')}"`}`
  return `${element}${element ? ';' : ''}proto=${scheme}`
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

function isToken(value: string): boolean {
  return TOKEN.test(value)
}

/**
 * fetch() adds `User-Agent: Bun/x` and `Accept: *\/*` when a request has none, and cannot be told
 * to omit them. Sending them empty is the closest we can get to "absent" (measured: the backend
 * then sees `User-Agent: ` / `Accept: ` with empty values instead of Bun's defaults).
 */
export function suppressFetchDefaults(headers: Headers): void {
  if (!headers.has('user-agent')) headers.set('user-agent', '')
  if (!headers.has('accept')) headers.set('accept', '')
}
