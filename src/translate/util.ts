/**
 * Defensive readers for untyped manifest fields. Objects reach translation only shape-checked
 * (kinds.ts), so anything below the top level may be any JSON value; these helpers turn the
 * wrong type into "absent" instead of a TypeError, which keeps translate() total.
 */

export type Json = Record<string, unknown>

export function obj(v: unknown): Json | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined
}

export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : []
}

/** Items of a list that are objects; others are dropped. */
export function objs(v: unknown): Json[] {
  // One pass, one array: called several times per route on every rebuild.
  const out: Json[] = []
  if (!Array.isArray(v)) return out
  for (const item of v) {
    const o = obj(item)
    if (o !== undefined) out.push(o)
  }
  return out
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

export function int(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined
}

export function bool(v: unknown): boolean | undefined {
  return typeof v === 'boolean' ? v : undefined
}

/** Plain string comparison (not locale-aware: output must not depend on the host's locale). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function cmpNum(a: number, b: number): number {
  return a - b
}

/** Stable sort returning a new array. */
export function sorted<T>(items: Iterable<T>, compare: (a: T, b: T) => number): T[] {
  return [...items].sort(compare)
}

export function uniqueSorted(items: Iterable<string>): string[] {
  return [...new Set(items)].sort(cmp)
}

/** Milliseconds since epoch of an RFC 3339 timestamp; absent or invalid sorts as "now-ish" (last). */
export function timestampOf(v: unknown): number {
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t
}
