/**
 * A status sink that logs policies that are not accepted (or conflicted), once per change: a
 * rejected policy is isolated to itself, so its status and this log line are how anyone finds out.
 * Wire it beside the other sinks (app.ts): `sinks: [memory, new PolicyStatusLog(logger), ...]`.
 */
import { POLICY_CRDS } from './crds.ts'
import type { StatusSink } from '../status/sink.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { StatusMap } from '../translate/types.ts'

const KINDS = new Set<string>(POLICY_CRDS.map((c) => c.kind))

export class PolicyStatusLog implements StatusSink {
  /** Per policy key, the problems last logged (JSON), so an unchanged problem is logged once. */
  #last = new Map<string, string>()

  constructor(private readonly logger: Logger) {}

  publish(status: StatusMap): void {
    const seen = new Set<string>()
    for (const [key, value] of Object.entries(status)) {
      if (!KINDS.has(key.slice(0, key.indexOf('/')))) continue
      seen.add(key)
      const problems: { ancestor: string; type: string; reason: string; message: string }[] = []
      for (const a of (value.ancestors as any[]) ?? []) {
        const ref = a?.ancestorRef ?? {}
        const ancestor = `${ref.kind}/${ref.namespace}/${ref.name}${ref.sectionName ? `/${ref.sectionName}` : ''}`
        for (const c of a?.conditions ?? [])
          if ((c.type === 'Accepted' && c.status === 'False') || (c.type === 'Conflicted' && c.status === 'True')) problems.push({ ancestor, type: c.type, reason: c.reason, message: c.message })
      }
      const json = JSON.stringify(problems)
      if (this.#last.get(key) === json) continue
      this.#last.set(key, json)
      for (const p of problems) this.logger.warn(p.type === 'Accepted' ? 'policy not accepted' : 'policy setting not applied', { policy: key, ancestor: p.ancestor, reason: p.reason, message: p.message })
    }
    for (const key of this.#last.keys()) if (!seen.has(key)) this.#last.delete(key)
  }
}
