/** Start an HttpDataplane on an OS-assigned port and talk to it with real sockets. */
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { Snapshot } from '../../src/ir/types.ts'
import type { Logger } from '../../src/dataplane/log.ts'

export interface Running {
  readonly dp: HttpDataplane
  readonly port: number
  readonly base: string
  stop(): Promise<void>
}

/** The snapshot must use IR port 0 (one HTTP port); the bound port is read back. */
export async function startDataplane(snap: Snapshot, logger?: Logger): Promise<Running> {
  const dp = new HttpDataplane({ hostname: '127.0.0.1', logger })
  const result = await dp.apply(snap)
  if (result.problems.length) throw new Error(result.problems.join('; '))
  const port = dp.boundPort(snap.http[0]!.port)!
  return { dp, port, base: `http://127.0.0.1:${port}`, stop: () => dp.stop(true) }
}

/** A port nothing listens on: bind, read the port, close. */
export async function closedPort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const p = s.port
  s.stop(true)
  return p
}

/** Raw HTTP/1.1 request over TCP: what the client sends is exactly what we write. */
export async function rawRequest(port: number, head: string, body = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open(s) {
          s.write(head + body)
        },
        data(_s, d) {
          out += Buffer.from(d).toString('latin1')
        },
        close() {
          resolve(out)
        },
        error(_s, e) {
          reject(e)
        },
      },
    }).catch(reject)
  })
}
