/** Raw-socket HTTP/1.1 for reliability tests: exactly the bytes we write, everything we read back. */
import net from 'node:net'

export interface Exchange {
  /** Everything the gateway sent, latin1. */
  readonly text: string
  /** Status codes of every response head seen, in order. */
  readonly statuses: number[]
  /** True when the gateway closed (or reset) the connection before `waitMs`. */
  readonly closed: boolean
  readonly ms: number
}

export interface ExchangeOptions {
  /** Give up (and destroy the socket) after this long; default 2000 ms. */
  readonly waitMs?: number
  /** Stop as soon as this many response heads and the close arrived, or this many heads when keepOpen. */
  readonly gapMs?: number
}

/** Write `parts` (with `gapMs` between them), collect the answer until close or `waitMs`. */
export function exchange(port: number, parts: string | readonly (string | Uint8Array)[], opts: ExchangeOptions = {}): Promise<Exchange> {
  const waitMs = opts.waitMs ?? 2000
  const chunks = typeof parts === 'string' ? [parts] : parts
  return new Promise((resolve) => {
    const started = Date.now()
    let text = ''
    let done = false
    const socket = net.connect(port, '127.0.0.1', async () => {
      for (const part of chunks) {
        if (socket.destroyed) return
        socket.write(typeof part === 'string' ? Buffer.from(part, 'latin1') : part)
        if (opts.gapMs) await Bun.sleep(opts.gapMs)
      }
    })
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ text, statuses: statusesOf(text), closed, ms: Date.now() - started })
    }
    const timer = setTimeout(() => finish(false), waitMs)
    socket.on('data', (d) => (text += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => finish(true))
  })
}

export function statusesOf(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))
}

/** A GET request head; `extra` lines are added verbatim (each without CRLF). */
export function get(path: string, ...extra: string[]): string {
  return `GET ${path} HTTP/1.1\r\nHost: app.test\r\n${extra.map((l) => `${l}\r\n`).join('')}\r\n`
}
