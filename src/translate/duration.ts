/**
 * Gateway API Duration: GEP-2257 strings such as "1h", "500ms", "1h2m3s" — one to four
 * <number><unit> pairs, units h/m/s/ms, no fractions, no sign. Returns milliseconds, or
 * undefined when the string is not a valid Duration.
 */
const PART = /(\d+)(ms|h|m|s)/y
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }

export function parseDuration(v: unknown): number | undefined {
  if (typeof v !== 'string' || v.length === 0) return undefined
  let total = 0
  let parts = 0
  PART.lastIndex = 0
  while (PART.lastIndex < v.length) {
    const at = PART.lastIndex
    const m = PART.exec(v)
    if (!m || m.index !== at) return undefined
    total += Number(m[1]) * UNIT_MS[m[2]!]!
    parts++
  }
  if (parts === 0 || parts > 4 || !Number.isSafeInteger(total)) return undefined
  return total
}
