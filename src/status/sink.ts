/**
 * Where computed status goes. In file mode it lives in memory (the admin view reads it);
 * in Kubernetes mode a second sink patches /status subresources. Both receive the same
 * publish() calls, as in Envoy Gateway's one-interface-two-sinks design.
 */
import type { StatusMap } from '../translate/types.ts'

export interface StatusSink {
  publish(status: StatusMap): void
}

/** Keeps the latest status per object and preserves lastTransitionTime of unchanged conditions. */
export class MemoryStatusSink implements StatusSink {
  #status: StatusMap = {}
  /** What the last publish() received: an entry handed over again as the same object is unchanged. */
  #published: StatusMap = {}

  constructor(private readonly now: () => Date = () => new Date()) {}

  publish(next: StatusMap): void {
    const stamp = this.now().toISOString().replace(/\.\d+Z$/, 'Z')
    const merged: StatusMap = {}
    // Routes translated together mostly share one status object (translate/share.ts); new ones
    // (no previous status) then share one stamped copy too.
    const fresh = new Map<Record<string, unknown>, Record<string, unknown>>()
    // for-in rather than Object.entries: no [key, value] pair per route on every publish
    for (const key in next) {
      const status = next[key]!
      // The translator hands over the same objects for routes that did not change (thousands on
      // a one-route edit): their stamped form is still right, so it is kept, not rebuilt.
      if (status === this.#published[key]) merged[key] = this.#status[key]!
      else if (this.#status[key] === undefined) {
        let stamped = fresh.get(status)
        if (!stamped) fresh.set(status, (stamped = stampTransitions(undefined, status, stamp)))
        merged[key] = stamped
      } else merged[key] = stampTransitions(this.#status[key], status, stamp)
    }
    this.#status = merged
    this.#published = next
  }

  get(key: string): Record<string, unknown> | undefined {
    return this.#status[key]
  }

  all(): StatusMap {
    return this.#status
  }
}

type Cond = { type: string; status: string; reason: string; lastTransitionTime?: string }

/**
 * Walks a status object and gives every `conditions` array a lastTransitionTime: the previous
 * one when the same condition (by type, at the same path) kept its status, else `stamp`.
 */
export function stampTransitions(prev: unknown, next: Record<string, unknown>, stamp: string): Record<string, unknown> {
  return walk(prev, next, stamp) as Record<string, unknown>
}

function walk(prev: any, next: any, stamp: string): unknown {
  if (Array.isArray(next)) {
    return next.map((item, i) => {
      // list entries are matched by identity fields when present (parents by parentRef, listeners by name)
      const match = Array.isArray(prev) ? prev.find((p: any) => sameEntry(p, item)) ?? prev[i] : undefined
      return walk(match, item, stamp)
    })
  }
  if (next === null || typeof next !== 'object') return next
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(next)) {
    if (k === 'conditions' && Array.isArray(v)) {
      const before: Cond[] = Array.isArray(prev?.conditions) ? prev.conditions : []
      out[k] = (v as Cond[]).map((c) => {
        const old = before.find((b) => b.type === c.type)
        const kept = old && old.status === c.status && old.lastTransitionTime
        return { ...c, lastTransitionTime: kept ? old.lastTransitionTime : stamp }
      })
    } else out[k] = walk(prev?.[k], v, stamp)
  }
  return out
}

function sameEntry(a: any, b: any): boolean {
  if (!a || !b || typeof a !== 'object') return false
  if ('parentRef' in b) return JSON.stringify(a.parentRef) === JSON.stringify(b.parentRef)
  if ('ancestorRef' in b) return JSON.stringify(a.ancestorRef) === JSON.stringify(b.ancestorRef)
  if ('name' in b) return a.name === b.name
  return false
}
