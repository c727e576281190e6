/**
 * A real redis-server (Debian's `redis-server`, installed by .ci/run) on a free loopback port,
 * without persistence, for tests. `pause()`/`resume()` black-hole it (SIGSTOP/SIGCONT: the
 * socket stays open and nothing answers); `kill()` and `start()` take it down and bring it back
 * on the same port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

export class RedisServer {
  #proc: ChildProcess | undefined
  private constructor(
    readonly port: number,
    readonly password: string | undefined,
  ) {}

  static async start(opts: { password?: string } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), opts.password)
    await server.start()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning']
    if (this.password) args.push('--requirepass', this.password)
    this.#proc = spawn('redis-server', args, { stdio: 'ignore' })
    for (let i = 0; i < 100; i++) {
      if (await this.#pings()) return
      await Bun.sleep(20)
    }
    throw new Error('redis-server did not start')
  }

  async #pings(): Promise<boolean> {
    try {
      const sock = await Bun.connect({ hostname: '127.0.0.1', port: this.port, socket: { data() {} } })
      sock.end()
      return true
    } catch {
      return false
    }
  }

  pause(): void {
    this.#proc?.kill('SIGSTOP')
  }

  resume(): void {
    this.#proc?.kill('SIGCONT')
  }

  async kill(): Promise<void> {
    const proc = this.#proc
    if (!proc || proc.exitCode !== null) return
    proc.kill('SIGCONT')
    const exited = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await exited
  }

  async stop(): Promise<void> {
    await this.kill()
  }
}
