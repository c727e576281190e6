/**
 * Coalesces bursts of change notifications into one run: waits `waitMs` after the last
 * notification, but never longer than `maxWaitMs` after the first, and never runs two at once
 * (a notification during a run schedules exactly one more).
 */
export interface Coalescer {
  notify(): void
  /** Resolves when no run is pending or in progress. */
  idle(): Promise<void>
  cancel(): void
}

export function coalesce(run: () => Promise<void>, opts: { waitMs: number; maxWaitMs: number }): Coalescer {
  let timer: ReturnType<typeof setTimeout> | undefined
  let firstAt = 0
  let running: Promise<void> | undefined
  let again = false
  let idleWaiters: (() => void)[] = []

  const settleIdle = () => {
    if (timer || running) return
    const waiters = idleWaiters
    idleWaiters = []
    for (const w of waiters) w()
  }
  const fire = () => {
    timer = undefined
    firstAt = 0
    if (running) {
      again = true
      return
    }
    running = run().finally(() => {
      running = undefined
      if (again) {
        again = false
        fire()
      } else settleIdle()
    })
  }
  return {
    notify() {
      const now = Date.now()
      if (!firstAt) firstAt = now
      clearTimeout(timer)
      const wait = Math.max(0, Math.min(opts.waitMs, firstAt + opts.maxWaitMs - now))
      timer = setTimeout(fire, wait)
    },
    idle() {
      if (!timer && !running) return Promise.resolve()
      return new Promise((resolve) => idleWaiters.push(resolve))
    },
    cancel() {
      clearTimeout(timer)
      timer = undefined
      settleIdle()
    },
  }
}
