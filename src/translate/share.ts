/**
 * Sharing of identical IR and status pieces between routes. At 10,000 routes every rule held its
 * own empty header, query and filter lists (an empty JS array costs ~60 bytes), its own
 * `{ kind: 'forward', backends: [{ weight: 1, target: { pool }, filters: [] }] }` and its own
 * status object, although thousands of them are equal. IR and status are immutable data (never
 * written after translation; validate, compile and the wire key only rules and pools by
 * identity), so equal pieces can be one object.
 */

/** The one empty list of the IR. Frozen: a write would throw instead of changing every rule. */
export const NONE: readonly never[] = Object.freeze([])

export function orNone<T>(xs: readonly T[]): readonly T[] {
  return xs.length === 0 ? NONE : xs
}

/**
 * Equal values by a key, within one translation (a fresh Sharer per translation, so nothing
 * grows with the history of edits; at start-up every route is translated in one go and shares).
 */
export class Sharer {
  readonly #byKey = new Map<string, unknown>()

  share<T>(key: string, value: T): T {
    const held = this.#byKey.get(key)
    if (held !== undefined) return held as T
    this.#byKey.set(key, value)
    return value
  }
}
