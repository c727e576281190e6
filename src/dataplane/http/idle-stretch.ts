/**
 * Bun's idle timer counts the wait for a backend as idleness, so a request whose backend thinks
 * longer than the keep-alive timeout needs the timer stretched (guarded-forward.ts). Stretching
 * every request costs two native calls (server.timeout before and after), yet nearly all
 * responses arrive within milliseconds. So a request is only noted here, and a coarse sweep
 * stretches those still waiting one to two ticks later; only those are put back afterwards.
 *
 * Safe only while the keep-alive timeout comfortably outlasts two ticks plus Bun's 4 s timer
 * granularity: below LAZY_MIN_IDLE_SECONDS the caller stretches at once, as before.
 */
import type { IdleControl } from './streaming.ts'

/** Keep-alive timeouts from this long on (the default is 15 s) use the deferred stretch. */
export const LAZY_MIN_IDLE_SECONDS = 10

/** A request waiting for its response, as the sweep sees it. */
export class PendingWait {
  /** Set by the caller once the response (or failure) is in hand. */
  done = false
  /** Set by the sweep when it stretched Bun's timer: the caller then puts it back. */
  stretched = false

  constructor(
    readonly req: Request,
    readonly conn: IdleControl,
    /** Seconds to stretch Bun's timer to (0 = off). */
    readonly seconds: number,
    /** A streaming body has taken over Bun's timer (streaming.ts): never touch it then. */
    readonly streams: { readonly engaged: boolean },
  ) {}
}

export class IdleStretcher {
  #fresh: PendingWait[] = []
  #aging: PendingWait[] = []
  #timer: Timer | undefined

  constructor(readonly tickMs = 1000) {}

  /** Note a request that may need its timer stretched if it is still waiting after a tick. */
  defer(wait: PendingWait): void {
    this.#fresh.push(wait)
    if (this.#timer) return
    this.#timer = setInterval(this.#sweep, this.tickMs)
    // Waiting requests keep their server alive; the sweep must not keep the process alive.
    this.#timer.unref()
  }

  readonly #sweep = (): void => {
    // Requests noted before the previous tick have waited at least one whole tick.
    const due = this.#aging
    this.#aging = this.#fresh
    this.#fresh = []
    for (const wait of due) {
      if (wait.done || wait.streams.engaged) continue
      wait.stretched = true
      setIdle(wait.req, wait.conn, wait.seconds)
    }
    if (this.#aging.length === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}

/** The process-wide stretcher (per worker): one timer, only while requests are noted. */
export const idleStretcher = new IdleStretcher()

export function setIdle(req: Request, conn: IdleControl, seconds: number): void {
  try {
    conn.setIdleTimeout(req, seconds)
  } catch {
    // The client connection is already gone.
  }
}
