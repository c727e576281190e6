/** An in-process HttpDataplane with chosen limits, on an OS-assigned port. */
import { HttpDataplane } from '../../../src/dataplane/http/server.ts'
import type { HttpLimits } from '../../../src/dataplane/http/limits.ts'
import type { Snapshot } from '../../../src/ir/types.ts'

export interface Gateway {
  readonly dp: HttpDataplane
  readonly port: number
  readonly base: string
  stop(): Promise<void>
}

/** The snapshot must use IR port 0 (one HTTP port). */
export async function startGateway(snap: Snapshot, limits: Partial<HttpLimits> = {}, idleTimeoutSeconds?: number): Promise<Gateway> {
  const dp = new HttpDataplane({ hostname: '127.0.0.1', limits, idleTimeoutSeconds })
  const result = await dp.apply(snap)
  if (result.problems.length) throw new Error(result.problems.join('; '))
  const port = dp.boundPort(snap.http[0]!.port)!
  return { dp, port, base: `http://127.0.0.1:${port}`, stop: () => dp.stop(true) }
}
