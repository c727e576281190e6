/**
 * Access logs: one JSON line per HTTP request, per L4 connection and per WebSocket session, at
 * its end. Lines are built after the response is out and written in batches (every 100 ms or
 * 64 KiB) so a slow stdout never holds a response back; beyond 4 MiB pending, lines are dropped
 * and counted (`dropped`).
 */

export interface AccessLogOptions {
  /** Keep one line in N on average (1: all; 0.1: one in ten). Errors (status ≥ 500) are always kept. */
  readonly sample?: number
  /** Include the query string in `path` (default false: query strings often hold tokens). */
  readonly query?: boolean
  readonly write?: (chunk: string) => void
}

const MAX_PENDING = 4 * 1024 * 1024

export class AccessLog {
  readonly sample: number
  readonly query: boolean
  dropped = 0
  written = 0
  #pending: string[] = []
  #bytes = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  readonly #write: (chunk: string) => void

  constructor(opts: AccessLogOptions = {}) {
    this.sample = opts.sample ?? 1
    this.query = opts.query ?? false
    this.#write = opts.write ?? ((chunk) => void process.stdout.write(chunk))
  }

  /** Whether this entry is kept (sampling). */
  keep(status: number): boolean {
    return this.sample >= 1 || status >= 500 || Math.random() < this.sample
  }

  push(entry: Record<string, unknown>): void {
    if (this.#bytes > MAX_PENDING) {
      this.dropped++
      return
    }
    const line = JSON.stringify(entry) + '\n'
    this.#pending.push(line)
    this.#bytes += line.length
    if (this.#bytes >= 64 * 1024) this.flush()
    else if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), 100)
      this.#timer.unref?.()
    }
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#pending.length === 0) return
    const chunk = this.#pending.join('')
    this.written += this.#pending.length
    this.#pending = []
    this.#bytes = 0
    try {
      this.#write(chunk)
    } catch {
      // stdout gone: nothing to log to
    }
  }
}
