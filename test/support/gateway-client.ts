/** Drives gateway-process.ts: the data planes in a child process whose RSS can be sampled. */
import type { Subprocess } from 'bun'
import type { Snapshot } from '../../src/ir/types.ts'
import type { HttpLimits } from '../../src/dataplane/http/limits.ts'

export class GatewayProcess {
  readonly #lines: AsyncIterator<string>

  private constructor(
    private readonly child: Subprocess<'pipe', 'pipe', 'inherit'>,
    lines: AsyncIterator<string>,
    readonly port: number,
  ) {
    this.#lines = lines
  }

  static async start(snapshot: Snapshot, limits?: Partial<HttpLimits>): Promise<GatewayProcess> {
    const child = Bun.spawn([process.execPath, new URL('./gateway-process.ts', import.meta.url).pathname, JSON.stringify(snapshot), ...(limits ? [JSON.stringify(limits)] : [])], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'inherit',
    })
    const lines = readLines(child.stdout)
    const first = await lines.next()
    if (first.done) throw new Error('gateway process exited before it was ready')
    const ready = JSON.parse(first.value) as { port: number; problems: string[] }
    if (ready.problems.length > 0) throw new Error(`gateway problems: ${ready.problems.join('; ')}`)
    return new GatewayProcess(child, lines, ready.port)
  }

  /** The gateway process (its /proc entries: open files, limits). */
  get pid(): number {
    return this.child.pid
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async rss(): Promise<number> {
    this.child.stdin.write('rss\n')
    this.child.stdin.flush()
    const { value, done } = await this.#lines.next()
    if (done) throw new Error('gateway process exited')
    return (JSON.parse(value) as { rss: number }).rss
  }

  /** RSS and JS heap after a full garbage collection in the gateway process. */
  async gc(): Promise<{ rss: number; heap: number; types?: Record<string, number> }> {
    this.child.stdin.write('gc\n')
    this.child.stdin.flush()
    const { value, done } = await this.#lines.next()
    if (done) throw new Error('gateway process exited')
    return JSON.parse(value) as { rss: number; heap: number; types?: Record<string, number> }
  }

  /** Peak RSS sampled every 50 ms while `work` runs. */
  async peakRssDuring(work: Promise<unknown>): Promise<number> {
    let finished = false
    void work.finally(() => (finished = true)).catch(() => {})
    let peak = 0
    while (!finished) {
      peak = Math.max(peak, await this.rss())
      await Promise.race([work.catch(() => {}), Bun.sleep(50)])
    }
    return Math.max(peak, await this.rss())
  }

  async stop(): Promise<void> {
    this.child.stdin.write('stop\n')
    this.child.stdin.flush()
    await Promise.race([this.child.exited, Bun.sleep(2_000)])
    this.child.kill()
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true })
    let newline: number
    while ((newline = pending.indexOf('\n')) >= 0) {
      yield pending.slice(0, newline)
      pending = pending.slice(newline + 1)
    }
  }
}

export const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1)
