/** A test-side WebSocket client: awaitable messages, pings, pongs and close. */

export interface Received {
  readonly data: string | Buffer
}

export class TestClient {
  readonly ws: WebSocket
  readonly pongs: string[] = []
  readonly pings: string[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  readonly #messages: (string | Buffer)[] = []
  #waiters: (() => void)[] = []

  private constructor(ws: WebSocket) {
    this.ws = ws
    ws.binaryType = 'nodebuffer'
    ws.addEventListener('message', (ev) => {
      this.#messages.push(ev.data as string | Buffer)
      this.#wake()
    })
    ws.addEventListener('ping', (ev) => {
      this.pings.push(String((ev as MessageEvent).data))
      this.#wake()
    })
    ws.addEventListener('pong', (ev) => {
      this.pongs.push(String((ev as MessageEvent).data))
      this.#wake()
    })
    this.closed = new Promise((resolve) =>
      ws.addEventListener('close', (ev) => {
        resolve({ code: ev.code, reason: ev.reason })
        this.#wake()
      }),
    )
  }

  /** Opens or rejects with the error event's message. */
  static connect(url: string, options: Bun.WebSocketOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options } as Bun.WebSocketOptions)
    const client = new TestClient(ws)
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(client), { once: true })
      ws.addEventListener('error', (ev) => reject(new Error((ev as ErrorEvent).message)), { once: true })
    })
  }

  async next(timeoutMs = 5_000): Promise<string | Buffer> {
    await this.until(() => this.#messages.length > 0, timeoutMs)
    return this.#messages.shift()!
  }

  /** Waits until `condition` holds (re-checked on every event), or throws after `timeoutMs`. */
  async until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the WebSocket')
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 50)
      })
    }
  }

  #wake(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }
}
