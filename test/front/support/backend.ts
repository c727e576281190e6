/**
 * A raw HTTP/1.1 backend on Bun.listen that records the exact request bytes the gateway sends
 * (head as received, body as framed on the wire) and answers with whatever bytes a test scripts.
 * Each TCP connection gets an id: distinct ids = distinct upstream connections.
 */
import type { Socket } from 'bun'

export interface SeenRequest {
  /** Connection id (1, 2, ...), in accept order. */
  readonly conn: number
  /** Index of this request on its connection (0 = first). */
  readonly seq: number
  /** The head exactly as received, request line and blank line included. */
  readonly head: string
  readonly method: string
  readonly target: string
  /** Header lines as received ("Name: value"), in order. */
  readonly lines: readonly string[]
  /** The body bytes exactly as they came on the wire (chunk framing included), latin1. */
  readonly rawBody: string
  /** The decoded body payload, latin1. */
  readonly body: string
}

/** What a test does with one request: write bytes, end, reset, or nothing (black hole). */
export interface BackendConn {
  readonly id: number
  /** Write with backpressure: queued bytes go out on drain, in order. */
  write(data: string | Uint8Array): void
  /** FIN after what is queued. */
  end(): void
  /** RST now. */
  terminate(): void
  /** Stream `total` bytes of `fill` in `chunk`-sized writes, respecting backpressure; then `done`. */
  pump(total: number, chunk: number, done?: () => void): void
  /** Bytes still queued in user space (not taken by the socket). */
  readonly queued: number
}

export type Responder = (req: SeenRequest, conn: BackendConn) => void

export interface RawBackend {
  readonly port: number
  readonly requests: SeenRequest[]
  /** Every byte received so far, all connections, latin1 (what a request parser may not have consumed too). */
  readonly received: () => string
  /** Connections accepted so far. */
  readonly accepted: () => number
  /** Connections currently open. */
  readonly open: () => number
  /** Resolves with the next request to arrive. */
  next(): Promise<SeenRequest>
  setResponder(r: Responder): void
  stop(): void
}

interface ConnState {
  id: number
  seq: number
  buf: string
  /** Bytes of the current request's head once parsed, waiting for the body. */
  pending: { head: string; method: string; target: string; lines: string[]; bodyStart: number } | undefined
  queue: (string | Uint8Array)[]
  queuedBytes: number
  ending: boolean
  pumping: { left: number; chunk: Uint8Array; done?: () => void } | undefined
  ctl: BackendConn
}

/** A 200 with a body and Content-Length. */
export function ok(body = 'ok', extra: string[] = []): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\n${extra.map((l) => `${l}\r\n`).join('')}\r\n${body}`
}

export function startRawBackend(initial: Responder = (_req, c) => c.write(ok())): RawBackend {
  let responder = initial
  const requests: SeenRequest[] = []
  let accepted = 0
  let open = 0
  let received = ''
  let waiters: ((r: SeenRequest) => void)[] = []

  const flush = (socket: Socket<ConnState>): void => {
    const st = socket.data
    while (st.queue.length > 0) {
      const next = st.queue[0]!
      const len = typeof next === 'string' ? Buffer.byteLength(next, 'latin1') : next.byteLength
      const bytes = typeof next === 'string' ? Buffer.from(next, 'latin1') : next
      const written = socket.write(bytes)
      if (written < 0) return
      if (written < len) {
        st.queue[0] = bytes.subarray(written)
        st.queuedBytes -= written
        return
      }
      st.queue.shift()
      st.queuedBytes -= len
    }
    const p = st.pumping
    if (p) {
      while (p.left > 0) {
        const n = Math.min(p.left, p.chunk.byteLength)
        const piece = n === p.chunk.byteLength ? p.chunk : p.chunk.subarray(0, n)
        const written = socket.write(piece)
        if (written < 0) return
        p.left -= Math.max(0, written)
        if (written < n) return
      }
      st.pumping = undefined
      p.done?.()
      if (st.queue.length > 0) return flush(socket)
    }
    if (st.ending && st.queue.length === 0 && !st.pumping) socket.end()
  }

  const parse = (socket: Socket<ConnState>): void => {
    const st = socket.data
    for (;;) {
      if (!st.pending) {
        const blank = st.buf.indexOf('\r\n\r\n')
        if (blank < 0) return
        const head = st.buf.slice(0, blank + 4)
        const all = head.slice(0, -4).split('\r\n')
        const [method = '', target = ''] = all[0]!.split(' ')
        st.pending = { head, method, target, lines: all.slice(1), bodyStart: blank + 4 }
      }
      const p = st.pending
      const field = (name: string) => p.lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim()
      const te = field('transfer-encoding')
      const cl = field('content-length')
      let end: number
      let body = ''
      if (te && /chunked/i.test(te)) {
        let pos = p.bodyStart
        let complete = false
        for (;;) {
          const lineEnd = st.buf.indexOf('\r\n', pos)
          if (lineEnd < 0) break
          const size = parseInt(st.buf.slice(pos, lineEnd).split(';')[0]!, 16)
          if (size === 0) {
            // Trailers until an empty line.
            const trailerEnd = st.buf.indexOf('\r\n\r\n', lineEnd)
            const direct = st.buf.startsWith('\r\n', lineEnd + 2)
            if (direct) {
              pos = lineEnd + 4
              complete = true
            } else if (trailerEnd >= 0) {
              pos = trailerEnd + 4
              complete = true
            }
            break
          }
          if (st.buf.length < lineEnd + 2 + size + 2) break
          body += st.buf.slice(lineEnd + 2, lineEnd + 2 + size)
          pos = lineEnd + 2 + size + 2
        }
        if (!complete) return
        end = pos
      } else {
        const length = cl ? Number(cl) : 0
        if (st.buf.length < p.bodyStart + length) return
        end = p.bodyStart + length
        body = st.buf.slice(p.bodyStart, end)
      }
      const req: SeenRequest = { conn: st.id, seq: st.seq++, head: p.head, method: p.method, target: p.target, lines: p.lines, rawBody: st.buf.slice(p.bodyStart, end), body }
      st.buf = st.buf.slice(end)
      st.pending = undefined
      requests.push(req)
      const current = waiters
      waiters = []
      for (const w of current) w(req)
      responder(req, st.ctl)
    }
  }

  const server = Bun.listen<ConnState>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        accepted++
        open++
        const st: ConnState = {
          id: accepted,
          seq: 0,
          buf: '',
          pending: undefined,
          queue: [],
          queuedBytes: 0,
          ending: false,
          pumping: undefined,
          ctl: {
            id: accepted,
            write(data) {
              st.queue.push(data)
              st.queuedBytes += typeof data === 'string' ? Buffer.byteLength(data, 'latin1') : data.byteLength
              if (st.queue.length === 1 && !st.pumping) flush(socket)
            },
            end() {
              st.ending = true
              flush(socket)
            },
            terminate() {
              socket.terminate()
            },
            pump(total, chunk, done) {
              st.pumping = { left: total, chunk: new Uint8Array(chunk).fill(0x61), done }
              if (st.queue.length === 0) flush(socket)
            },
            get queued() {
              return st.queuedBytes
            },
          },
        }
        socket.data = st
      },
      data(socket, data) {
        const text = Buffer.from(data).toString('latin1')
        received += text
        socket.data.buf += text
        parse(socket)
      },
      drain(socket) {
        flush(socket)
      },
      close() {
        open--
      },
      error() {},
    },
  })

  return {
    port: server.port,
    requests,
    received: () => received,
    accepted: () => accepted,
    open: () => open,
    next: () => new Promise((resolve) => waiters.push(resolve)),
    setResponder(r) {
      responder = r
    },
    stop: () => server.stop(true),
  }
}

/** Field value of a recorded request (first occurrence, case-insensitive name), or undefined. */
export function field(req: SeenRequest, name: string): string | undefined {
  const lower = `${name.toLowerCase()}:`
  const line = req.lines.find((l) => l.toLowerCase().startsWith(lower))
  return line?.slice(lower.length).trim()
}

/** Every field name (lower-case) of a recorded request, in order. */
export function fieldNames(req: SeenRequest): string[] {
  return req.lines.map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
}
