/** Header hygiene between client and upstream: hop-by-hop stripping and forwarding headers. */

/** RFC 9110 §7.6.1 plus the legacy Proxy-Connection and Keep-Alive: the one list every path uses. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/** Request fields a proxy rewrites with its own hop appended (setForwardingHeaders, the front). */
export const FORWARDING_FIELDS: readonly string[] = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']

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
 * X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host and Forwarded (appended).
 * `originalHost` is the Host header the client sent.
 */
export function addForwardingHeaders(headers: Headers, clientIp: string, scheme: string, originalHost: string): void {
  if (clientIp) {
    const xff = headers.get('x-forwarded-for')
    headers.set('x-forwarded-for', xff ? `${xff}, ${clientIp}` : clientIp)
  }
  headers.set('x-forwarded-proto', scheme)
  if (originalHost) headers.set('x-forwarded-host', originalHost)
  const element = forwardedElement(clientIp, scheme, originalHost)
  const forwarded = headers.get('forwarded')
  headers.set('forwarded', forwarded ? `${forwarded}, ${element}` : element)
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
