/**
 * A non-gRPC h2 stream through the HTTP pipeline (http/handler.ts), so h2 clients of ordinary
 * HTTPRoutes keep every feature: the stream becomes a Fetch Request (its body a ReadableStream
 * that pauses the h2 stream when full: flow control reaches the client), the pipeline's Response
 * is written back with the same backpressure (each write waits for 'drain').
 */
import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { PortPlan } from '../snapshot.ts'
import { handleRequest, type Connection } from '../http/handler.ts'
import type { ProxyDeps } from '../http/proxy.ts'
import type { HttpLimits } from '../http/limits.ts'
import { waitForDrain } from '../upstream/h2c.ts'
import { literal } from './grpc-status.ts'

const { NGHTTP2_CANCEL } = http2.constants

/** Response fields HTTP/2 forbids (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'trailer'])
const BODY_HIGH_WATER_BYTES = 64 * 1024

/** What the bridge needs of the connection. */
export interface BridgeConnection {
  readonly clientIp: string
  readonly serverName: string | undefined
  readonly listenerPort: number
  readonly idleTimeoutSeconds: number
  readonly limits: HttpLimits
}

export async function serveThroughPipeline(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, port: PortPlan, conn: BridgeConnection, deps: ProxyDeps): Promise<void> {
  const method = String(headers[':method'] ?? 'GET')
  const authority = String(headers[':authority'] ?? headers.host ?? '')
  const fields = new Headers()
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */) continue
    const value = headers[name]
    // Cookie crumbs (RFC 9113 §8.2.3) join with "; ", other repeated fields with ", " (Headers does that).
    if (Array.isArray(value)) {
      if (name === 'cookie') fields.set(name, value.join('; '))
      else for (const v of value) fields.append(name, v)
    } else if (value !== undefined) fields.set(name, value)
  }
  if (authority) fields.set('host', authority)
  const abort = new AbortController()
  stream.on('close', () => abort.abort())
  stream.on('error', () => {})
  const hasBody = !stream.readableEnded && !(stream as { endAfterHeaders?: boolean }).endAfterHeaders && method !== 'GET' && method !== 'HEAD'
  let req: Request
  try {
    req = new Request(`${port.scheme}://${authority || 'localhost'}${String(headers[':path'] ?? '/')}`, {
      method,
      headers: fields,
      body: hasBody ? bodyOf(stream) : null,
      signal: abort.signal,
      ...(hasBody ? { duplex: 'half' } : {}),
    } as RequestInit)
  } catch {
    return respondText(stream, 400, 'bad request')
  }
  const connection: Connection = {
    clientIp: conn.clientIp,
    serverName: conn.serverName,
    listenerPort: conn.listenerPort,
    idleTimeoutSeconds: conn.idleTimeoutSeconds,
    limits: conn.limits,
    // h2 streams have no per-request idle timer of Bun's to stretch.
    setIdleTimeout: () => {},
  }
  const res = await handleRequest(req, port, connection, deps, authority || null)
  if (!res) return respondText(stream, 501, 'upgrade is not available over HTTP/2')
  await writeResponse(stream, res, method === 'HEAD')
}

/** The h2 stream's request body as a ReadableStream that pauses the stream while its queue is full. */
function bodyOf(stream: ServerHttp2Stream): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        stream.on('data', (chunk: Buffer) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
          if ((controller.desiredSize ?? 1) <= 0) stream.pause()
        })
        stream.once('end', () => controller.close())
        stream.once('aborted', () => controller.error(new Error('client reset the stream')))
      },
      pull() {
        stream.resume()
      },
      cancel() {
        if (!stream.closed) stream.close(NGHTTP2_CANCEL)
      },
    },
    { highWaterMark: BODY_HIGH_WATER_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
  )
}

async function writeResponse(stream: ServerHttp2Stream, res: Response, head: boolean): Promise<void> {
  if (stream.destroyed || stream.closed) {
    await res.body?.cancel().catch(() => {})
    return
  }
  const out: OutgoingHttpHeaders = { ':status': res.status }
  for (const [name, value] of res.headers) {
    if (CONNECTION_SPECIFIC.has(name) || name === 'set-cookie') continue
    out[name] = value
  }
  const cookies = res.headers.getSetCookie()
  if (cookies.length > 0) out['set-cookie'] = cookies
  const body = head ? null : res.body
  try {
    stream.respond(literal(out), { endStream: body === null })
  } catch {
    await res.body?.cancel().catch(() => {})
    return
  }
  if (body === null) return
  const reader = body.getReader()
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      if (stream.destroyed) {
        await reader.cancel()
        return
      }
      if (!stream.write(value)) await waitForDrain(stream)
    }
    stream.end()
  } catch {
    // Upstream body failed mid-stream: reset so the client does not take a cut body for a whole one.
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
  }
}

function respondText(stream: ServerHttp2Stream, status: number, text: string): void {
  if (stream.destroyed || stream.closed) return
  try {
    stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' })
    stream.end(`${text}\n`)
  } catch {
    // closed meanwhile
  }
}
