/** An in-process HttpDataplane (so the HTTP front) with chosen limits, on an OS-assigned port. */
import { HttpDataplane } from '../../../src/dataplane/http/server.ts'
import type { HttpLimits } from '../../../src/dataplane/http/limits.ts'
import type { Logger, LogFields } from '../../../src/dataplane/log.ts'
import type { Snapshot } from '../../../src/ir/types.ts'
import type { ProcessGauges } from '../../../src/dataplane/overload/process-gauges.ts'

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error'
  readonly msg: string
  readonly fields?: LogFields
}

export interface Front {
  readonly dp: HttpDataplane
  readonly port: number
  /** Everything the data plane logged, in order. */
  readonly logs: LogLine[]
  /** Log lines at level error (from index `since` of `logs`), as "message: first line of the error". */
  errors(since?: number): string[]
  stop(): Promise<void>
}

/** The snapshot must use IR port 0 (one HTTP port). `gauges`: process counts shared with other fronts (as workers share them). */
export async function startFront(snap: Snapshot, limits: Partial<HttpLimits> = {}, gauges?: ProcessGauges): Promise<Front> {
  const logs: LogLine[] = []
  const logger: Logger = {
    debug: (msg, fields) => void logs.push({ level: 'debug', msg, fields }),
    info: (msg, fields) => void logs.push({ level: 'info', msg, fields }),
    warn: (msg, fields) => void logs.push({ level: 'warn', msg, fields }),
    error: (msg, fields) => void logs.push({ level: 'error', msg, fields }),
  }
  const dp = new HttpDataplane({ hostname: '127.0.0.1', limits, logger, gauges })
  const result = await dp.apply(snap)
  if (result.problems.length) throw new Error(result.problems.join('; '))
  const port = dp.boundPort(snap.http[0]!.port)!
  return { dp, port, logs, errors: (since = 0) => logs.slice(since).filter((l) => l.level === 'error').map((l) => `${l.msg}: ${String(l.fields?.error ?? '').split('\n')[0]}`), stop: () => dp.stop(true) }
}
