/** Exponential backoff with jitter, and an abortable sleep: the retry rhythm of every Kubernetes loop. */

export interface BackoffOptions {
  readonly initialMs?: number
  readonly maxMs?: number
}

export class Backoff {
  #attempt = 0
  readonly initialMs: number
  readonly maxMs: number

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500
    this.maxMs = opts.maxMs ?? 30_000
  }

  /** The next delay: initial × 2^attempt, capped, with ±20 % jitter so replicas do not retry in lockstep. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.#attempt++)
    return Math.round(base * (0.8 + Math.random() * 0.4))
  }

  reset(): void {
    this.#attempt = 0
  }
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
