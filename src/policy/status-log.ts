/**
 * A status sink that logs policies that are not accepted (or conflicted), once per change: a
 * rejected policy is isolated to itself, so its status and this log line are how anyone finds out.
 * Wire it beside the other sinks (app.ts): `sinks: [memory, new PolicyStatusLog(logger), ...]`.
 */
import { POLICY_CRDS } from './crds.ts'
import type { StatusSink } from '../status/sink.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { StatusMap } from '../translate/types.ts'

/** "Kind/" of each policy CRD: a prefix test allocates nothing (the map has an entry per route too). */
const PREFIXES: readonly string[] = POLICY_CRDS.map((c) => `${c.kind}/`)
const isPolicyKey = (key: string) => PREFIXES.some((p) => key.startsWith(p))

export class PolicyStatusLog implements StatusSink {
  /**
   * Per policy key, the status object last seen and its problems as logged (JSON), so an
   * unchanged problem is logged once. Translation hands the same object for a policy whose
   * status did not change, so with a policy on each of 10,000 routes a rebuild reads only the
   * few that did.
   */
  readonly #last = new Map<string, { value: unknown; json: string; round: number }>()
  #round = 0

  constructor(private readonly logger: Logger) {}

  publish(status: StatusMap): void {
    const round = ++this.#round
    for (const key in status) {
      if (!isPolicyKey(key)) continue
      const value = status[key]!
      const last = this.#last.get(key)
      if (last?.value === value) {
        last.round = round
        continue
      }
      const json = JSON.stringify(problemsOf(value))
      this.#last.set(key, { value, json, round })
      if (last?.json === json) continue
      for (const p of problemsOf(value)) this.logger.warn(p.type === 'Accepted' ? 'policy not accepted' : 'policy setting not applied', { policy: key, ancestor: p.ancestor, reason: p.reason, message: p.message })
    }
    for (const [key, last] of this.#last) if (last.round !== round) this.#last.delete(key)
  }
}

function problemsOf(value: Record<string, unknown>): { ancestor: string; type: string; reason: string; message: string }[] {
  const problems: { ancestor: string; type: string; reason: string; message: string }[] = []
  for (const a of (value.ancestors as any[]) ?? []) {
    const ref = a?.ancestorRef ?? {}
    const ancestor = `${ref.kind}/${ref.namespace}/${ref.name}${ref.sectionName ? `/${ref.sectionName}` : ''}`
    for (const c of a?.conditions ?? [])
      if ((c.type === 'Accepted' && c.status === 'False') || (c.type === 'Conflicted' && c.status === 'True')) problems.push({ ancestor, type: c.type, reason: c.reason, message: c.message })
  }
  return problems
}
