/** Byte sizes in manifests and flags (the request body limit). */

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
}

/**
 * A byte size as Kubernetes quantities spell it ("10Mi", "512Ki", "1G", "1048576") or nginx does
 * ("10m", "512k": treated as binary, like nginx). undefined when it is not one.
 */
export function parseByteSize(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) && raw >= 0 ? raw : undefined
  if (typeof raw !== 'string') return undefined
  const m = /^\s*(\d+)\s*([kKmMgG]i?)?[bB]?\s*$/.exec(raw)
  if (!m) return undefined
  let unit = (m[2] ?? '').toLowerCase()
  // nginx's "10m" means MiB; Kubernetes' "10M" means 10^6. Only the upper-case SI form is decimal.
  if (unit.length === 1 && m[2] === unit) unit += 'i'
  const n = Number(m[1]) * UNITS[unit]!
  return Number.isSafeInteger(n) ? n : undefined
}
