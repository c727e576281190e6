/**
 * Long-lived HTTP streams: SSE, chunked or large responses, streamed uploads.
 *
 * Measured on Bun 1.4.5: Bun.serve's `idleTimeout` is not reset by data flowing in either
 * direction: a response writing every 300 ms, or an upload sending every 800 ms, is cut when it
 * expires. So once a body streams, the guard turns Bun's timer off for that request
 * (server.timeout(req, 0)) and runs its own idle timer, which every chunk up or down resets.
 * When the streams end, Bun's timer is put back (otherwise the keep-alive connection would never
 * time out: timeout(req, 0) sticks to the connection).
 *
 * The idle limit is the route's stream idle timeout (HttpRule.streamIdleTimeoutMs, annotation
 * portico.dev/stream-idle-timeout) or else the server-wide idle timeout; 0 means no limit.
 */

/** Bodies with a known length up to this size finish well within Bun's timer: not worth a guard. */
export const SMALL_BODY_BYTES = 1024 * 1024

/** What the guard needs from the client connection (handler.ts Connection). */
export interface IdleControl {
  setIdleTimeout(req: Request, seconds: number): void
  /** The server-wide idle timeout (seconds) to restore when the streams end. */
  readonly idleTimeoutSeconds: number
}

export class StreamIdleTimeout extends Error {
  constructor(readonly idleMs: number) {
    super(`stream idle for ${idleMs} ms`)
    this.name = 'StreamIdleTimeout'
  }
}

/**
 * Calls `onIdle` once nothing called touch() for `idleMs`. touch() only stores a timestamp, so it
 * is cheap enough for every chunk; the timer re-arms itself for the remaining time.
 */
export class IdleTimer {
  #last = 0
  #timer: Timer | undefined
  #stopped = false

  constructor(
    readonly idleMs: number,
    private readonly onIdle: () => void,
  ) {
    this.#last = Date.now()
    this.#arm(idleMs)
  }

  touch(): void {
    this.#last = Date.now()
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#check, ms)
    // An idle stream must not keep the process alive on its own.
    this.#timer.unref?.()
  }

  #check = (): void => {
    if (this.#stopped) return
    const silent = Date.now() - this.#last
    if (silent >= this.idleMs) {
      this.#stopped = true
      this.onIdle()
    } else this.#arm(this.idleMs - silent)
  }
}

/** One per forwarded request; engages only when a body actually streams. */
export class StreamGuard {
  #active = 0
  #timer: IdleTimer | undefined
  #expired = false
  /** Made when a body first streams: most requests never need one. */
  #cancels: Set<(err: Error) => void> | undefined

  constructor(
    private readonly req: Request,
    private readonly conn: IdleControl,
    /** Route override; undefined = the server-wide idle timeout. */
    private readonly routeIdleMs: number | undefined,
  ) {}

  /** True once the idle timer cut the streams (the proxy then blames the client, not the backend). */
  get expired(): boolean {
    return this.#expired
  }

  /** Wrap a streamed request body (unknown or large length). */
  watchUpload(body: ReadableStream<Uint8Array>, contentLength: string | null): ReadableStream<Uint8Array> {
    if (isSmall(contentLength)) return body
    return this.#watch(body)
  }

  /** Wrap a relayed response body that may outlive Bun's idle timer (unknown or large length). */
  watchDownload(body: ReadableStream<Uint8Array>, contentLength: string | null): ReadableStream<Uint8Array> {
    if (isSmall(contentLength)) return body
    return this.#watch(body)
  }

  #watch(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    this.#engage()
    const reader = source.getReader()
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      this.#cancels?.delete(cancel)
      this.#release()
    }
    let cancel = (_err: Error) => {}
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          cancel = (err) => {
            finish()
            reader.cancel(err).catch(() => {})
            try {
              controller.error(err)
            } catch {}
          }
          this.#cancels ??= new Set()
          this.#cancels.add(cancel)
        },
        pull: async (controller) => {
          let chunk: Awaited<ReturnType<typeof reader.read>>
          try {
            chunk = await reader.read()
          } catch (err) {
            finish()
            throw err
          }
          if (finished) return
          if (chunk.done) {
            finish()
            controller.close()
            return
          }
          this.#timer?.touch()
          controller.enqueue(chunk.value)
        },
        cancel: (reason) => {
          finish()
          return reader.cancel(reason)
        },
      },
      // No buffering of our own: one chunk is read only when the consumer asks for one.
      { highWaterMark: 0 },
    )
  }

  #engage(): void {
    if (this.#active++ > 0) return
    const idleMs = this.routeIdleMs ?? this.conn.idleTimeoutSeconds * 1000
    setIdle(this.req, this.conn, 0)
    if (idleMs > 0) this.#timer = new IdleTimer(idleMs, () => this.#expire(idleMs))
  }

  #release(): void {
    if (--this.#active > 0) return
    this.#timer?.stop()
    this.#timer = undefined
    setIdle(this.req, this.conn, this.conn.idleTimeoutSeconds)
  }

  #expire(idleMs: number): void {
    this.#expired = true
    const err = new StreamIdleTimeout(idleMs)
    for (const cancel of [...(this.#cancels ?? [])]) cancel(err)
  }
}

function isSmall(contentLength: string | null): boolean {
  if (contentLength === null) return false
  const n = Number(contentLength)
  return Number.isFinite(n) && n <= SMALL_BODY_BYTES
}

function setIdle(req: Request, conn: IdleControl, seconds: number): void {
  try {
    conn.setIdleTimeout(req, seconds)
  } catch {
    // The client connection is already gone: nothing to restore.
  }
}
