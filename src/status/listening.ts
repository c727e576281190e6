/**
 * Programmed=True must mean "serving". Translation decides what should be programmed; only the
 * data plane knows whether a port could actually be bound. This marks the listeners on ports
 * that failed (and a Gateway none of whose listeners listen) as not programmed.
 */
import type { ResourceView } from '../store/store.ts'
import { objectKey } from '../store/kinds.ts'
import type { Condition, StatusMap } from '../translate/types.ts'

export function markNotListening(status: StatusMap, view: ResourceView, failedPorts: ReadonlySet<number>): StatusMap {
  if (failedPorts.size === 0) return status
  const out: StatusMap = { ...status }
  for (const gw of view.gateways) {
    const key = objectKey('Gateway', gw.metadata.namespace, gw.metadata.name)
    const current = status[key] as { conditions?: Condition[]; listeners?: { name: string; conditions?: Condition[] }[] } | undefined
    if (!current?.listeners) continue
    const portOf = new Map<string, number>()
    for (const l of Array.isArray(gw.spec?.listeners) ? gw.spec.listeners : []) if (l && typeof l.name === 'string') portOf.set(l.name, l.port)
    let failed = 0
    const listeners = current.listeners.map((l) => {
      const port = portOf.get(l.name)
      if (port === undefined || !failedPorts.has(port)) return l
      failed++
      return { ...l, conditions: replace(l.conditions, notProgrammed(`port ${port} could not be bound`, gw.metadata.generation)) }
    })
    if (failed === 0) continue
    const conditions = failed === listeners.length ? replace(current.conditions, notProgrammed('no listener could be bound', gw.metadata.generation)) : current.conditions
    out[key] = { ...current, listeners, ...(conditions ? { conditions } : {}) }
  }
  return out
}

function notProgrammed(message: string, generation: number | undefined): Condition {
  return { type: 'Programmed', status: 'False', reason: 'Invalid', message, ...(generation !== undefined ? { observedGeneration: generation } : {}) }
}

function replace(conditions: Condition[] | undefined, next: Condition): Condition[] {
  return [...(conditions ?? []).filter((c) => c.type !== next.type), next]
}
