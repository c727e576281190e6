/**
 * Condition builders and merging. Translation builds conditions without timestamps (so its
 * output is a pure function of the input); whoever publishes status stamps lastTransitionTime
 * with `mergeConditions`, keeping the old time when nothing meaningful changed.
 */
import type { Condition } from '../translate/types.ts'

export type ConditionStatus = Condition['status']

export function condition(type: string, status: ConditionStatus, reason: string, message: string, observedGeneration?: number): Condition {
  const c: Condition = { type, status, reason, message }
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration
  return c
}

export const trueCondition = (type: string, reason: string, message: string, generation?: number): Condition =>
  condition(type, 'True', reason, message, generation)

export const falseCondition = (type: string, reason: string, message: string, generation?: number): Condition =>
  condition(type, 'False', reason, message, generation)

/** Replaces (or appends) the condition of the same type, keeping the list's order otherwise. */
export function setCondition(list: readonly Condition[], next: Condition): Condition[] {
  const i = list.findIndex((c) => c.type === next.type)
  if (i < 0) return [...list, next]
  const out = [...list]
  out[i] = next
  return out
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type)
}

/**
 * Stamps `next` with lastTransitionTime: the previous condition's time when its status and reason
 * are unchanged (a message or observedGeneration bump is not a transition), else `now`.
 * Conditions are matched by type; order follows `next`.
 */
export function mergeConditions(prev: readonly Condition[] | undefined, next: readonly Condition[], now: string): Condition[] {
  return next.map((c) => {
    const old = findCondition(prev, c.type)
    const unchanged = old !== undefined && old.status === c.status && old.reason === c.reason && old.lastTransitionTime
    return { ...c, lastTransitionTime: unchanged ? old.lastTransitionTime : now }
  })
}
