/**
 * Compatibility with annotations users bring from other gateways, so their manifests work with
 * only the controllerName changed.
 *
 * `konghq.com/strip-path: "true"` (Kong): the matched path prefix is removed before the request
 * is forwarded, i.e. a URLRewrite ReplacePrefixMatch "/" on every PathPrefix rule. A rule that
 * already rewrites its path keeps its own rewrite; rules with non-prefix matches are untouched
 * (Kong strips only what a prefix matched).
 */
import type { HttpFilter, HttpMatch } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'

export const STRIP_PATH_ANNOTATION = 'konghq.com/strip-path'

export function wantsStripPath(route: K8sObject): boolean {
  return String(route.metadata.annotations?.[STRIP_PATH_ANNOTATION] ?? '').toLowerCase() === 'true'
}

/** The rule's filters with the strip-path rewrite added when it applies. */
export function withStripPath(filters: readonly HttpFilter[], matches: readonly (HttpMatch | undefined)[]): readonly HttpFilter[] {
  if (filters.some((f) => f.type === 'URLRewrite' && f.path)) return filters
  const usable = matches.filter((m): m is HttpMatch => m !== undefined)
  if (usable.length === 0 || !usable.every((m) => m.path.type === 'PathPrefix')) return filters
  return [...filters, { type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/' } }]
}
