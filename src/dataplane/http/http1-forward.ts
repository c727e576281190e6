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
import type { ResponseFilter } from './filters/types.ts'
import { forwardedElement } from './headers.ts'

/** One agent per process (per worker): pools are per endpoint, whichever plan or route uses them. */
export const http1Agent = new Http1Agent()

/** Pools this path serves: plain HTTP/1.1. TLS (BackendTLSPolicy), h2c and WebSocket pools use their own paths. */
export function usesHttp1Client(pool: RuntimePool): boolean {
  return pool.ir.protocol === 'http' && pool.tls === undefined
}

/** Never copied from the client: hop-by-hop (RFC 9110 §7.6.1), framing (the client sets it), and the fields we rewrite. */
const DROPPED_REQUEST_FIELDS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
])

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/**
 * Header lines for the upstream request. Reads the upstream copy when a filter made one
 * (RequestHeaderModifier, URLRewrite), else the client's headers directly: the common request
 * never copies a Headers object.
 */
export function upstreamHeaderLines(state: RequestState): string {
  const source = state.modifiedUpstreamHeaders ?? state.req.headers
  const clientHeaders = state.req.headers
  const nominated = nominatedFields(clientHeaders.get('connection'))
  let lines = `host: ${state.authority}\r\n`
  let hasRequestId = false
  source.forEach((value, name) => {
    if (DROPPED_REQUEST_FIELDS.has(name) || (nominated !== undefined && nominated.has(name))) return
    if (name === 'x-request-id') hasRequestId = true
    lines += `${name}: ${value}\r\n`
  })
  // Forwarding headers are read from the (possibly modified) upstream view, like the fetch path.
  const clientIp = state.clientIp
  if (clientIp) {
    const xff = source.get('x-forwarded-for')
    lines += `x-forwarded-for: ${xff ? `${xff}, ${clientIp}` : clientIp}\r\n`
  }
  lines += `x-forwarded-proto: ${state.scheme}\r\n`
  const originalHost = clientHeaders.get('host') ?? ''
  if (originalHost) lines += `x-forwarded-host: ${originalHost}\r\n`
  const element = forwardedElement(clientIp, state.scheme, originalHost)
  const forwarded = source.get('forwarded')
  lines += `forwarded: ${forwarded ? `${forwarded}, ${element}` : element}\r\n`
  if (!hasRequestId) lines += `x-request-id: ${crypto.randomUUID()}\r\n`
  return lines
}

/** Field names a Connection header nominates, beyond the usual keep-alive/close (RFC 9110 §7.6.1). */
function nominatedFields(connection: string | null): Set<string> | undefined {
  if (connection === null) return undefined
  const lower = connection.toLowerCase()
  if (lower === 'keep-alive' || lower === 'close') return undefined
  const names = new Set<string>()
  for (const token of lower.split(',')) {
    const name = token.trim()
    if (name) names.add(name)
  }
  return names
}

export function http1Request(
  state: RequestState,
  headers: string,
  payload: ArrayBuffer | ReadableStream<Uint8Array> | null,
): Http1Request {
  const body = payload instanceof ArrayBuffer ? new Uint8Array(payload) : payload
  // An empty body the client announced (POST with Content-Length: 0) stays announced.
  const length = state.req.headers.get('content-length')
  const bodyLength = length === null || body instanceof Uint8Array ? undefined : Number(length)
  return { method: state.method, target: state.path + state.query, headers, body, bodyLength }
}

export type Http1Outcome = Http1Response | UpstreamError

/** One attempt on one endpoint. Never rejects: failures come back as UpstreamError. */
export function sendHttp1(member: PoolMember, req: Http1Request, timeoutMs: number, fresh: boolean, signal: AbortSignal | undefined): Promise<Http1Outcome> {
  return http1Agent.request(member.state, req, { timeoutMs, fresh, signal })
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
  responseFilters: readonly (readonly ResponseFilter[])[],
  watchDownload?: (body: ReadableStream<Uint8Array>, contentLength: string | null) => ReadableStream<Uint8Array>,
): Response {
  const raw = upstream.headers
  const pairs: [string, string][] = []
  let connection: string | undefined
  let contentType = false
  let contentLength: string | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = connection === undefined ? raw[i + 1]! : `${connection}, ${raw[i + 1]!}`
      continue
    }
    if (lower === 'content-type') contentType = true
    else if (lower === 'content-length') contentLength = raw[i + 1]!
    pairs.push([name, raw[i + 1]!])
  }
  const nominated = connection === undefined ? undefined : nominatedFields(connection)
  let headers: [string, string][] | Headers = nominated ? pairs.filter(([name]) => !nominated.has(name.toLowerCase())) : pairs
  if (hasAny(responseFilters)) {
    const modified = new Headers(headers)
    for (const filters of responseFilters) for (const filter of filters) filter(state, modified)
    contentType = modified.has('content-type')
    headers = modified
  }
  let body = upstream.body
  // Bun.serve labels byte bodies "application/octet-stream" when there is no Content-Type; a
  // proxy must not invent one, and Bun leaves stream bodies unlabelled. Rare path.
  if (body instanceof Uint8Array && !contentType) body = streamOf(body)
  if (body instanceof ReadableStream && watchDownload) body = watchDownload(body, contentLength)
  return new Response(body, { status: upstream.status, statusText: upstream.statusText, headers })
}

function hasAny(lists: readonly (readonly ResponseFilter[])[]): boolean {
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
