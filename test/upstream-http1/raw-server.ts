/**
 * A byte-level HTTP/1.1 test server on Bun.listen: it records exactly what arrived (heads,
 * bodies, connections) and lets each test write exactly the response bytes it wants, so the
 * client can be checked against framing corner cases no ordinary server would produce.
 */
import type { Socket, TCPSocketListener } from 'bun'

export interface RawRequest {
  /** Raw head text (request line and header lines, latin1), without the blank line. */
  readonly head: string
  readonly method: string
  readonly target: string
  /** Lower-cased names → values, in order (duplicates kept). */
  readonly headers: [string, string][]
  /** Decoded body bytes (content-length or chunked). */
  readonly body: Buffer
  readonly chunked: boolean
  /** Which connection (0, 1, ...) carried it. */
  readonly connection: number
  /** Position of this request on its connection (0 for the first). */
  readonly index: number
}

export interface RawConnection {
  readonly id: number
  readonly socket: Socket<ConnState>
  /** Bytes that arrived while a response to an earlier request was still owed (pipelining). */
  pipelinedBytes: number
  closed: boolean
}

interface ConnState {
  conn: RawConnection
  buf: Buffer
  count: number
  /** Requests received and not answered yet. */
  owed: number
}

export type Responder = (req: RawRequest, conn: RawConnection, reply: (bytes: string | Uint8Array) => void) => void

export class RawServer {
  readonly requests: RawRequest[] = []
  readonly connections: RawConnection[] = []
  readonly listener: TCPSocketListener<ConnState>

  constructor(responder: Responder) {
    this.listener = Bun.listen<ConnState>({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open: (socket) => {
          const conn: RawConnection = { id: this.connections.length, socket, pipelinedBytes: 0, closed: false }
          this.connections.push(conn)
          socket.data = { conn, buf: Buffer.alloc(0), count: 0, owed: 0 }
        },
        data: (socket, data) => {
          const state = socket.data
          if (state.owed > 0) state.conn.pipelinedBytes += data.byteLength
          state.buf = Buffer.concat([state.buf, data])
          for (;;) {
            const parsed = parseRequest(state.buf)
            if (!parsed) return
            state.buf = state.buf.subarray(parsed.consumed)
            const req: RawRequest = { ...parsed.request, connection: state.conn.id, index: state.count++ }
            this.requests.push(req)
            state.owed++
            responder(req, state.conn, (bytes) => {
              state.owed = Math.max(0, state.owed - 1)
              socket.write(bytes)
            })
          }
        },
        close: (socket) => {
          socket.data.conn.closed = true
        },
        error() {},
      },
    })
  }

  get port(): number {
    return this.listener.port
  }

  get endpoint(): { key: string; address: string; port: number } {
    return { key: `127.0.0.1:${this.port}`, address: '127.0.0.1', port: this.port }
  }

  stop(): void {
    this.listener.stop(true)
  }
}

function parseRequest(buf: Buffer): { request: Omit<RawRequest, 'connection' | 'index'>; consumed: number } | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const head = buf.subarray(0, end).toString('latin1')
  const [requestLine, ...lines] = head.split('\r\n')
  const [method, target] = requestLine!.split(' ')
  const headers = lines.map((line) => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as [string, string]
  })
  const get = (name: string) => headers.find(([n]) => n === name)?.[1]
  let offset = end + 4
  const chunked = get('transfer-encoding')?.toLowerCase() === 'chunked'
  if (chunked) {
    const parts: Buffer[] = []
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', offset)
      if (lineEnd < 0) return undefined
      const size = parseInt(buf.subarray(offset, lineEnd).toString('latin1'), 16)
      if (buf.length < lineEnd + 2 + size + 2) return undefined
      if (size === 0) {
        offset = lineEnd + 4
        break
      }
      parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size))
      offset = lineEnd + 2 + size + 2
    }
    return { request: { head, method: method!, target: target!, headers, body: Buffer.concat(parts), chunked }, consumed: offset }
  }
  const length = Number(get('content-length') ?? 0)
  if (buf.length < offset + length) return undefined
  const body = Buffer.from(buf.subarray(offset, offset + length))
  return { request: { head, method: method!, target: target!, headers, body, chunked }, consumed: offset + length }
}

/** A response head + body as one string. */
export function response(status: string, headers: [string, string][], body = ''): string {
  return `HTTP/1.1 ${status}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${body}`
}

/** Wait (without a time limit of our own: bun test's per-test timeout bounds it) until `check` holds. */
export async function eventually(check: () => boolean, pollMs = 10): Promise<void> {
  while (!check()) await Bun.sleep(pollMs)
}

export async function readAll(body: Uint8Array | ReadableStream<Uint8Array> | null): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0)
  if (body instanceof Uint8Array) return Buffer.from(body)
  return Buffer.from(await new Response(body).arrayBuffer())
}
