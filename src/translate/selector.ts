/** Kubernetes label selectors (matchLabels + matchExpressions), used by allowedRoutes.namespaces. */
import { list, obj, str } from './util.ts'

/** Returns whether the labels match; an invalid selector matches nothing (fail closed). */
export function selectorMatches(selector: unknown, labels: Readonly<Record<string, string>>): boolean {
  const sel = obj(selector)
  if (!sel) return false
  const ml = obj(sel.matchLabels)
  if (sel.matchLabels !== undefined && !ml) return false
  for (const [k, v] of Object.entries(ml ?? {})) if (labels[k] !== v) return false
  if (sel.matchExpressions !== undefined && !Array.isArray(sel.matchExpressions)) return false
  for (const raw of list(sel.matchExpressions)) {
    const e = obj(raw)
    const key = str(e?.key)
    const op = str(e?.operator)
    if (!e || !key || !op) return false
    const values = list(e.values).filter((v): v is string => typeof v === 'string')
    const has = Object.hasOwn(labels, key)
    switch (op) {
      case 'In':
        if (!has || !values.includes(labels[key]!)) return false
        break
      case 'NotIn':
        if (has && values.includes(labels[key]!)) return false
        break
      case 'Exists':
        if (!has) return false
        break
      case 'DoesNotExist':
        if (has) return false
        break
      default:
        return false
    }
  }
  return true
}
