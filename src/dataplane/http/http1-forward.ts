/**
 * The proxy's plain-HTTP path on the own HTTP/1.1 client (upstream/http1): build the upstream
 * request head straight from the client's headers, send one attempt, and turn the upstream
 * response into the Response Bun.serve writes. proxy.ts keeps the policy (retries, deadlines,
 * mirrors, status mapping); this file only moves bytes, with as few copies as it can.
 *
 * Header hygiene is the same as the fetch path's (headers.ts), done while serialising instead of
 * on a copied Headers object: hop-by-hop and Connection-nominated fields are dropped both ways,
 * X-Forwarded-*, Forwarded and X-Request-Id are set, and nothing else is added (no User-Agent,
 * Accept or Accept-Encoding the client did not send, and bodies are never decompressed).
 */
import type { RuntimePool } from '../upstream/pool.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import { Http1Agent, type Http1Request, type Http1Response, type UpstreamError } from '../upstream/http1/index.ts'
import type { RequestState } from './context.ts'
import type { ResponseHook } from './chain.ts'
import { DROPPED_REQUEST_FIELDS, forwardedElement, forwardingLines, HOP_BY_HOP, nominatedFields, requestIdLine } from './headers.ts'

/** One agent per process (per worker): pools are per endpoint, whichever plan or route uses them. */
export const http1Agent = new Http1Agent()

/**
 * PORTICO_UPSTREAM_CLIENT=fetch sends plain HTTP through fetch() again: an escape hatch should
 * the own client misbehave somewhere, and the baseline of bench/http.ts.
 */
const OWN_CLIENT = process.env.PORTICO_UPSTREAM_CLIENT !== 'fetch'

/** Pools this path serves: plain HTTP/1.1. TLS (BackendTLSPolicy), h2c and WebSocket pools use their own paths. */
export function usesHttp1Client(pool: RuntimePool): boolean {
  return OWN_CLIENT && pool.ir.protocol === 'http' && pool.tls === undefined
}


/**
 * Header lines for the upstream request, in one pass over the headers. Reads the upstream copy
 * when a filter made one (RequestHeaderModifier, URLRewrite), else the client's headers
 * directly: the common request never copies a Headers object.
 */
export function upstreamHeaderLines(state: RequestState): string {
  const clientHeaders = state.req.headers
  const source = state.modifiedUpstreamHeaders ?? clientHeaders
  // One pass, with a module-level callback writing module state: no closure per request
  // (forEach runs synchronously, so nothing can interleave).
  const pass = linesPass
  pass.lines = `host: ${state.authority}\r\n`
  pass.hasRequestId = false
  pass.xff = undefined
  pass.forwarded = undefined
  pass.connection = undefined
  pass.originalHost = ''
  source.forEach(collectLine)
  let lines = pass.lines
  const { hasRequestId, xff, forwarded, connection } = pass
  let originalHost = pass.originalHost
  pass.lines = ''
  if (source !== clientHeaders) originalHost = clientHeaders.get('host') ?? ''
  // Fields the client's Connection header nominates are hop-by-hop too (RFC 9110 §7.6.1). Rare:
  // take them out of the finished lines rather than slowing down the common pass.
  if (connection !== undefined) {
    const nominated = nominatedFields(connection)
    if (nominated) lines = withoutFields(lines, nominated)
  }
  const peerIp = state.peerIp
  lines += forwardingLines(xff, forwarded, peerIp, state.scheme, originalHost, cachedForwardedElement(peerIp, state.scheme, originalHost))
  if (!hasRequestId && state.generateRequestId) lines += requestIdLine()
  return lines
}

const linesPass = {
  lines: '',
  hasRequestId: false,
  xff: undefined as string | undefined,
  forwarded: undefined as string | undefined,
  connection: undefined as string | undefined,
  originalHost: '',
}

function collectLine(value: string, name: string): void {
  const pass = linesPass
  if (!DROPPED_REQUEST_FIELDS.has(name)) {
    if (name === 'x-request-id') pass.hasRequestId = true
    pass.lines += `${name}: ${value}\r\n`
    return
  }
  // Values the forwarding headers build on, picked up on the way instead of get() calls.
  if (name === 'x-forwarded-for') pass.xff = value
  else if (name === 'forwarded') pass.forwarded = value
  else if (name === 'connection') pass.connection = value
  else if (name === 'host') pass.originalHost = value
}

/**
 * Keep-alive clients send request after request with the same address and Host: remember the
 * last Forwarded element instead of re-validating and re-quoting it every time.
 */
let lastForwarded = { clientIp: '', scheme: '', host: '', element: '' }

function cachedForwardedElement(clientIp: string, scheme: string, host: string): string {
  const last = lastForwarded
  if (last.clientIp === clientIp && last.host === host && last.scheme === scheme && last.element !== '') return last.element
  const element = forwardedElement(clientIp, scheme, host)
  lastForwarded = { clientIp, scheme, host, element }
  return element
}


function withoutFields(lines: string, names: ReadonlySet<string>): string {
  return lines
    .split('\r\n')
    .filter((line) => !names.has(line.slice(0, line.indexOf(':')).toLowerCase()))
    .join('\r\n')
}

/** Methods that never carry a body: their Content-Length is not looked up. */
const BODILESS_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'TRACE'])

export function http1Request(
  state: RequestState,
  headers: string,
  payload: ArrayBuffer | ReadableStream<Uint8Array> | null,
): Http1Request {
  const body = payload instanceof ArrayBuffer ? new Uint8Array(payload) : payload
  let bodyLength: number | undefined
  // A length the client announced for a stream, or for an empty body (POST with Content-Length: 0).
  if (!(body instanceof Uint8Array) && (body !== null || !BODILESS_METHODS.has(state.method))) {
    const length = state.req.headers.get('content-length')
    if (length !== null) bodyLength = Number(length)
  }
  return { method: state.method, target: state.path + state.query, headers, body, bodyLength }
}

export type Http1Outcome = Http1Response | UpstreamError

/** One attempt on one endpoint. Never rejects: failures come back as UpstreamError. */
export function sendHttp1(member: PoolMember, req: Http1Request, timeoutMs: number, fresh: boolean, client: Request): Promise<Http1Outcome> {
  return http1Agent.request(member.state, req, { timeoutMs, fresh, client })
}

/** Cancel an unused upstream body (a retried response), so its connection is closed, not leaked. */
export function discardHttp1Body(res: Http1Response): void {
  if (res.body instanceof ReadableStream) void res.body.cancel().catch(() => {})
}

/**
 * The client-facing Response: upstream status and headers minus hop-by-hop, response filters
 * applied, body as bytes when it arrived whole, else the upstream stream itself.
 */
export function relayHttp1(
  state: RequestState,
  upstream: Http1Response,
  responseFilters: readonly (readonly ResponseHook[])[],
  watchDownload?: (body: ReadableStream<Uint8Array>, contentLength: string | null) => ReadableStream<Uint8Array>,
): Response {
  let headers: [string, string][] | Headers = upstream.hopByHop ? withoutHopByHop(upstream.headers) : upstream.headers
  let contentType = upstream.contentType
  if (hasAny(responseFilters)) {
    const modified = new Headers(headers)
    for (const filters of responseFilters) for (const filter of filters) filter(state, modified, upstream.status)
    contentType = modified.has('content-type')
    headers = modified
  }
  let body = upstream.body
  // Bun.serve labels byte bodies "application/octet-stream" when there is no Content-Type; a
  // proxy must not invent one, and Bun leaves stream bodies unlabelled. Rare path.
  if (body instanceof Uint8Array && !contentType) body = streamOf(body)
  if (body instanceof ReadableStream && watchDownload) body = watchDownload(body, contentLengthOf(upstream.headers))
  return new Response(body, { status: upstream.status, statusText: upstream.statusText, headers })
}

/** The upstream fields minus hop-by-hop ones and those the upstream's Connection header nominates. */
function withoutHopByHop(fields: readonly [string, string][]): [string, string][] {
  let nominated: Set<string> | undefined
  for (const [name, value] of fields) {
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      const names = nominatedFields(value)
      if (names) for (const n of names) (nominated ??= new Set()).add(n)
    }
  }
  return fields.filter(([name]) => {
    const lower = name.toLowerCase()
    return !HOP_BY_HOP.has(lower) && !(nominated?.has(lower) ?? false)
  })
}

function contentLengthOf(fields: readonly [string, string][]): string | null {
  for (const [name, value] of fields) if (name.length === 14 && name.toLowerCase() === 'content-length') return value
  return null
}

function hasAny(lists: readonly (readonly ResponseHook[])[]): boolean {
  for (const list of lists) if (list.length > 0) return true
  return false
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes)
      controller.close()
    },
  })
}
