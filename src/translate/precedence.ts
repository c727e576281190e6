/**
 * Gateway API match precedence within one hostname, across all routes:
 *   1. path: Exact, then RegularExpression, then PathPrefix; longer values first within a type
 *   2. a method match
 *   3. more header matches
 *   4. more query parameter matches
 *   5. the older route (creationTimestamp), then "<namespace>/<name>" alphabetically
 *   6. rule order, then match order within the route
 *
 * The spec leaves RegularExpression's place to implementations. We rank it above PathPrefix:
 * every rule without matches is PathPrefix "/", so a regex ranked below prefixes would be
 * shadowed by any catch-all rule on the same host, which is never what its author meant.
 */
import type { HttpRule } from '../ir/types.ts'
import { cmp } from './util.ts'

export interface RankedRule {
  readonly rule: HttpRule
  /** Route creationTimestamp in ms (missing sorts last). */
  readonly created: number
  /** "<namespace>/<name>" */
  readonly routeKey: string
  readonly ruleIndex: number
  readonly matchIndex: number
}

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const

export function compareRules(a: RankedRule, b: RankedRule): number {
  const pa = a.rule.match.path
  const pb = b.rule.match.path
  return (
    PATH_RANK[pa.type] - PATH_RANK[pb.type] ||
    pb.value.length - pa.value.length ||
    (a.rule.match.method ? 0 : 1) - (b.rule.match.method ? 0 : 1) ||
    b.rule.match.headers.length - a.rule.match.headers.length ||
    b.rule.match.query.length - a.rule.match.query.length ||
    a.created - b.created ||
    cmp(a.routeKey, b.routeKey) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  )
}

export function sortRules(rules: readonly RankedRule[]): RankedRule[] {
  return [...rules].sort(compareRules)
}
