/** Drives support/gateway-process.ts: an L4 gateway in a child process whose RSS can be sampled. */
import type { Subprocess } from 'bun'
import type { Snapshot } from '../../../src/ir/types.ts'

export class GatewayProcess {
  readonly #lines: AsyncIterator<string>

  private constructor(private readonly child: Subprocess<'pipe', 'pipe', 'inherit'>) {
    this.#lines = readLines(child.stdout)
  }

  static async start(snapshot: Snapshot): Promise<GatewayProcess> {
    const child = Bun.spawn([process.execPath, new URL('./gateway-process.ts', import.meta.url).pathname, JSON.stringify(snapshot)], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'inherit',
    })
    const gateway = new GatewayProcess(child)
    const ready = JSON.parse(await gateway.#next()) as { problems: string[] }
    if (ready.problems.length > 0) throw new Error(`gateway problems: ${ready.problems.join('; ')}`)
    return gateway
  }

  async rss(): Promise<number> {
    this.child.stdin.write('rss\n')
    this.child.stdin.flush()
    return (JSON.parse(await this.#next()) as { rss: number }).rss
  }

  async stop(): Promise<void> {
    this.child.stdin.write('stop\n')
    this.child.stdin.flush()
    await Promise.race([this.child.exited, Bun.sleep(2_000)])
    this.child.kill()
  }

  async #next(): Promise<string> {
    const { value, done } = await this.#lines.next()
    if (done) throw new Error('gateway process exited')
    return value
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
