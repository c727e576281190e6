/**
 * gRPC-Web (binary: application/grpc-web, application/grpc-web+proto) to a gRPC backend. A
 * browser cannot read HTTP trailers, so gRPC-Web carries them in the body: after the messages, a
 * frame with flag 0x80 whose payload is the trailers as "name: value\r\n" lines. This has
 * fetch's shape (proxy.ts calls it like h2cFetch): the request goes to the backend as gRPC over
 * a pooled h2 session (h2c or TLS, upstream-sessions.ts), and the Response streams the backend's
 * messages, then the trailer frame. Bodies stream both ways with backpressure.
 * application/grpc-web-text (base64) is not translated: it goes to the backend unchanged.
 */
import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { UpstreamTls } from '../upstream/pool.ts'
import type { H2cInit } from '../upstream/h2c.ts'
import { upstreamSession, whenConnected } from './upstream-sessions.ts'

const { NGHTTP2_CANCEL } = http2.constants
const GRPC_WEB = 'application/grpc-web'
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'te', 'trailer', 'content-length'])
const RESPONSE_HIGH_WATER_BYTES = 64 * 1024

/** Binary gRPC-Web (the text variant is base64 and not translated). */
export function isGrpcWeb(contentType: string | null): boolean {
  return contentType !== null && contentType.startsWith(GRPC_WEB) && !contentType.startsWith(`${GRPC_WEB}-text`)
}

/** One gRPC-Web call as gRPC. Rejects like fetch: with an error carrying a code (ECONNREFUSED...). */
export async function grpcWebFetch(url: string, init: H2cInit & { readonly tls?: UpstreamTls }): Promise<Response> {
  const slash = url.indexOf('/', url.indexOf('://') + 3)
  const origin = slash < 0 ? url : url.slice(0, slash)
  const path = slash < 0 ? '/' : url.slice(slash)
  const pooled = upstreamSession(origin, init.tls)
  const error = await whenConnected(pooled)
  if (error) throw error
  const fields = init.headers ?? new Headers()
  const head: OutgoingHttpHeaders = { ':method': 'POST', ':path': path, ':scheme': init.tls ? 'https' : 'http', ':authority': fields.get('host') ?? '' }
  for (const [name, value] of fields) {
    if (CONNECTION_SPECIFIC.has(name) || name === 'x-grpc-web' || name === 'x-user-agent') continue
    head[name] = name === 'content-type' ? `application/grpc${value.slice(GRPC_WEB.length)}` : value
  }
  head.te = 'trailers'
  pooled.active++
  let up: ClientHttp2Stream
  try {
    up = pooled.session.request(head)
  } catch (err) {
    pooled.active--
    throw err
  }
  up.once('close', () => pooled.active--)
  const signal = init.signal
  const abort = () => up.close(NGHTTP2_CANCEL)
  signal?.addEventListener('abort', abort, { once: true })
  up.once('close', () => signal?.removeEventListener('abort', abort))
  void sendBody(up, init.body ?? null)

  const response = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    up.once('response', resolve)
    up.once('error', reject)
    up.once('close', () => reject(Object.assign(new Error('upstream stream closed before its head'), { code: 'ECONNRESET' })))
  })
  const out = new Headers()
  for (const name in response) {
    if (name.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(name) || name === 'date') continue
    const value = response[name]
    if (Array.isArray(value)) for (const v of value) out.append(name, v)
    else if (value !== undefined) out.set(name, String(value))
  }
  const type = out.get('content-type')
  if (type?.startsWith('application/grpc')) out.set('content-type', `${GRPC_WEB}${type.slice('application/grpc'.length)}`)
  // Browsers only see fields CORS exposes; grpc-web clients read the status from the body frame.
  const trailersOnly = response['grpc-status'] !== undefined
  let trailers: IncomingHttpHeaders | undefined
  up.once('trailers', (t: IncomingHttpHeaders) => (trailers = t))
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        up.on('data', (chunk: Buffer) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
          if ((controller.desiredSize ?? 1) <= 0) up.pause()
        })
        up.once('end', () => {
          controller.enqueue(trailerFrame(trailersOnly ? response : (trailers ?? { 'grpc-status': '2', 'grpc-message': 'upstream ended without trailers' })))
          controller.close()
        })
        up.once('close', () => {
          // reset mid-body: the browser must not take a cut stream for a complete answer
          if (!up.readableEnded) controller.error(new Error('upstream stream reset'))
        })
      },
      pull() {
        up.resume()
      },
      cancel() {
        up.close(NGHTTP2_CANCEL)
      },
    },
    { highWaterMark: RESPONSE_HIGH_WATER_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
  )
  return new Response(body, { status: Number(response[':status'] ?? 200), headers: out })
}

async function sendBody(up: ClientHttp2Stream, body: ArrayBuffer | ReadableStream<Uint8Array> | null): Promise<void> {
  try {
    if (body === null) return void up.end()
    if (body instanceof ArrayBuffer) return void up.end(Buffer.from(body))
    const reader = body.getReader()
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      if (up.closed) return void (await reader.cancel())
      if (!up.write(value)) await new Promise((resolve) => (up.once('drain', resolve), up.once('close', resolve)))
    }
    if (!up.closed) up.end()
  } catch {
    if (!up.closed) up.close(NGHTTP2_CANCEL)
  }
}

/** The gRPC-Web trailer frame: flag 0x80, length, "name: value\r\n" lines (pseudo-headers and framing left out). */
export function trailerFrame(trailers: IncomingHttpHeaders): Uint8Array {
  let text = ''
  for (const name in trailers) {
    if (name.charCodeAt(0) === 58 || name === 'content-type' || name === 'date') continue
    const value = trailers[name]
    for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) text += `${name}: ${v}\r\n`
  }
  const payload = Buffer.from(text)
  const frame = Buffer.alloc(5 + payload.length)
  frame[0] = 0x80
  frame.writeUInt32BE(payload.length, 1)
  payload.copy(frame, 5)
  return new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength)
}
