/**
 * A raw HTTP/1.1 client over node:net for front tests: writes exactly the bytes given, parses
 * responses one at a time off the same connection (keep-alive, pipelining), and reports the close.
 */
import net from 'node:net'

export interface ParsedResponse {
  readonly status: number
  /** The head exactly as received (status line through the blank line). */
  readonly head: string
  /** Header lines as received. */
  readonly lines: readonly string[]
  /** Body bytes as framed on the wire (chunk framing included), latin1. */
  readonly rawBody: string
  /** Decoded payload, latin1. */
  readonly body: string
}

export interface ClientOptions {
  /** Local address to connect from (127.0.0.2 makes the client IP distinguishable from the gateway's own loopback). */
  readonly localAddress?: string
}

export class RawClient {
  readonly socket: net.Socket
  #buf = ''
  #closed = false
  #waiters: (() => void)[] = []
  readonly opened: Promise<void>

  constructor(port: number, options: ClientOptions = {}) {
    this.socket = net.connect({ port, host: '127.0.0.1', localAddress: options.localAddress, allowHalfOpen: true })
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve())
      this.socket.once('error', reject)
    })
    this.socket.on('data', (d) => {
      this.#buf += d.toString('latin1')
      this.#wake()
    })
    this.socket.on('error', () => {})
    this.socket.on('end', () => {
      this.#closed = true
      this.#wake()
    })
    this.socket.on('close', () => {
      this.#closed = true
      this.#wake()
    })
  }

  static async connect(port: number, options: ClientOptions = {}): Promise<RawClient> {
    const c = new RawClient(port, options)
    await c.opened
    return c
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Bytes received and not consumed by readResponse yet. */
  get unread(): string {
    return this.#buf
  }

  write(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** Half-close: FIN our side, keep reading. */
  shutdown(): void {
    this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
  }

  #wake(): void {
    const w = this.#waiters
    this.#waiters = []
    for (const f of w) f()
  }

  #more(deadline: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()))
      this.#waiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  /**
   * The next complete response. `noBody` for HEAD requests (and 1xx/204/304 are always bodiless).
   * Throws when the connection closes or `timeoutMs` passes first (the message says which).
   */
  async readResponse(opts: { noBody?: boolean; timeoutMs?: number } = {}): Promise<ParsedResponse> {
    const deadline = Date.now() + (opts.timeoutMs ?? 3000)
    for (;;) {
      const parsed = this.#tryParse(opts.noBody ?? false)
      if (parsed) return parsed
      if (this.#closed) throw new Error(`connection closed before a complete response; unread: ${JSON.stringify(this.#buf.slice(0, 300))}`)
      if (Date.now() >= deadline) throw new Error(`timed out waiting for a response; unread: ${JSON.stringify(this.#buf.slice(0, 300))}`)
      await this.#more(deadline)
    }
  }

  #tryParse(noBody: boolean): ParsedResponse | undefined {
    const buf = this.#buf
    const blank = buf.indexOf('\r\n\r\n')
    if (blank < 0) return undefined
    const head = buf.slice(0, blank + 4)
    const all = head.slice(0, -4).split('\r\n')
    const status = Number(all[0]!.split(' ')[1])
    const lines = all.slice(1)
    const get = (name: string) => lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim()
    const start = blank + 4
    let end: number
    let body = ''
    if (noBody || status === 204 || status === 304 || (status >= 100 && status < 200)) end = start
    else if (/chunked/i.test(get('transfer-encoding') ?? '')) {
      let pos = start
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', pos)
        if (lineEnd < 0) return undefined
        const size = parseInt(buf.slice(pos, lineEnd).split(';')[0]!, 16)
        if (size === 0) {
          if (buf.startsWith('\r\n', lineEnd + 2)) {
            end = lineEnd + 4
            break
          }
          const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd)
          if (trailerEnd < 0) return undefined
          end = trailerEnd + 4
          break
        }
        if (buf.length < lineEnd + 2 + size + 2) return undefined
        body += buf.slice(lineEnd + 2, lineEnd + 2 + size)
        pos = lineEnd + 2 + size + 2
      }
    } else if (get('content-length') !== undefined) {
      const length = Number(get('content-length'))
      if (buf.length < start + length) return undefined
      end = start + length
      body = buf.slice(start, end)
    } else {
      // Close-delimited.
      if (!this.#closed) return undefined
      end = buf.length
      body = buf.slice(start)
    }
    this.#buf = buf.slice(end)
    return { status, head, lines, rawBody: buf.slice(start, end), body }
  }

  /** Resolves true once the peer closed (FIN or RST), false if still open after `ms`. */
  async waitClosed(ms = 2000): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.#closed && Date.now() < deadline) await this.#more(deadline)
    return this.#closed
  }
}

/** Field value from a parsed response (first occurrence, case-insensitive), or undefined. */
export function header(res: ParsedResponse, name: string): string | undefined {
  const lower = `${name.toLowerCase()}:`
  return res.lines.find((l) => l.toLowerCase().startsWith(lower))?.slice(lower.length).trim()
}

/** Lower-case field names of a parsed response, in order. */
export function headerNames(res: ParsedResponse): string[] {
  return res.lines.map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
}

/** One request head: `GET /p HTTP/1.1`, Host app.test, extra lines verbatim. */
export function req(method: string, target: string, ...extra: string[]): string {
  return `${method} ${target} HTTP/1.1\r\nHost: app.test\r\n${extra.map((l) => `${l}\r\n`).join('')}\r\n`
}
