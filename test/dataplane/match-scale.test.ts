/**
 * The compiled matcher at scale: indexed rule tables pick the same rule a full scan in
 * precedence order would (randomised comparison), and the work per request does not grow with
 * the number of routes (counted in matcher calls, not time).
 */
import { describe, expect, test } from 'bun:test'
import { PortRouter, RuleMatcher, RuleTable, type MatchableRule, type MatchInput } from '../../src/dataplane/http/match.ts'
import type { HttpMatch, HttpRule } from '../../src/ir/types.ts'
import { listener, rule, vhost } from './ir.ts'

function input(path: string, method = 'GET', headers: Record<string, string> = {}): MatchInput {
  return { method, path, headers: new Headers(headers), queryParam: () => undefined }
}

/** A rule whose matcher counts how often it is asked. */
class CountingRule implements MatchableRule {
  calls = 0
  readonly matcher: RuleMatcher

  constructor(
    readonly id: number,
    match: HttpMatch,
  ) {
    const real = new RuleMatcher(match)
    const self = this
    this.matcher = Object.assign(Object.create(real) as RuleMatcher, {
      matches(i: MatchInput) {
        self.calls++
        return real.matches(i)
      },
    })
  }
}

function random(seed: number): () => number {
  let x = seed
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x / 0x7fffffff
  }
}

describe('RuleTable', () => {
  test('finds the same first rule as a full scan, for random rules and paths', () => {
    const rnd = random(42)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
    const segments = ['a', 'b', 'api', 'v1', 'v2', 'x-y', '']
    const randomPath = () => '/' + Array.from({ length: Math.floor(rnd() * 4) }, () => pick(segments)).join('/') + (rnd() < 0.2 ? '/' : '')
    for (let round = 0; round < 40; round++) {
      const rules = Array.from({ length: 16 + Math.floor(rnd() * 60) }, (_, i) => {
        const kind = pick(['Exact', 'PathPrefix', 'PathPrefix', 'RegularExpression'] as const)
        const value = kind === 'RegularExpression' ? pick(['/a/.*', '/v[12]/b', '.*/x-y']) : randomPath()
        const match: HttpMatch = {
          path: { type: kind, value },
          headers: rnd() < 0.2 ? [{ type: 'Exact', name: 'x-env', value: pick(['blue', 'green']) }] : [],
          query: [],
          ...(rnd() < 0.2 ? { method: pick(['GET', 'POST']) } : {}),
        }
        return new CountingRule(i, match)
      })
      const table = new RuleTable(rules)
      for (let q = 0; q < 200; q++) {
        const req = input(randomPath(), pick(['GET', 'POST']), rnd() < 0.5 ? { 'x-env': pick(['blue', 'green']) } : {})
        const scanned = rules.find((r) => r.matcher.matches(req))
        expect(table.first(req)?.id).toBe(scanned?.id)
      }
    }
  })

  test('5,000 prefix routes on one host: a request tests a handful of rules', () => {
    const rules = Array.from({ length: 5000 }, (_, i) => new CountingRule(i, { path: { type: 'PathPrefix', value: `/svc-${i}` }, headers: [], query: [] }))
    rules.push(new CountingRule(5000, { path: { type: 'PathPrefix', value: '/' }, headers: [], query: [] }))
    const table = new RuleTable(rules)
    expect(table.first(input('/svc-4321/orders/7'))?.id).toBe(4321)
    expect(table.first(input('/unknown'))?.id).toBe(5000)
    const calls = rules.reduce((sum, r) => sum + r.calls, 0)
    expect(calls).toBeLessThanOrEqual(3)
  })
})

describe('PortRouter at scale', () => {
  const routes = (n: number): HttpRule[] => Array.from({ length: n }, (_, i) => rule({ match: { path: { type: 'PathPrefix', value: `/r${i}` } } }))

  test('5,000 exact hostnames and 5,000 wildcard hostnames resolve to the right rule', () => {
    const vhosts = [
      ...Array.from({ length: 5000 }, (_, i) => vhost(`host-${i}.example.com`, [rule({ id: `exact-${i}` })])),
      ...Array.from({ length: 5000 }, (_, i) => vhost(`*.zone-${i}.example.com`, [rule({ id: `wild-${i}` })])),
      vhost('*.example.com', [rule({ id: 'wild-any' })]),
      vhost('*', [rule({ id: 'catch-all' })]),
    ]
    const router = new PortRouter([listener(vhosts)], (r) => ({ id: r.id, matcher: new RuleMatcher(r.match) }))
    expect(router.route('host-4999.example.com', input('/'))?.rule.id).toBe('exact-4999')
    expect(router.route('a.b.zone-17.example.com', input('/'))?.rule.id).toBe('wild-17')
    expect(router.route('zone-17.example.com', input('/'))?.rule.id).toBe('wild-any')
    expect(router.route('other.test', input('/'))?.rule.id).toBe('catch-all')
  })

  test('an exact-host rule that does not match falls through to wildcards, then the catch-all', () => {
    const vhosts = [
      vhost('a.example.com', routes(20)),
      vhost('*.example.com', [rule({ id: 'wild', match: { path: { type: 'PathPrefix', value: '/w' } } })]),
      vhost('*', [rule({ id: 'any' })]),
    ]
    const router = new PortRouter([listener(vhosts)], (r) => ({ id: r.id, matcher: new RuleMatcher(r.match) }))
    expect(router.route('a.example.com', input('/r7/x'))?.rule.id).toBe(vhosts[0]!.rules[7]!.id)
    expect(router.route('a.example.com', input('/w'))?.rule.id).toBe('wild')
    expect(router.route('a.example.com', input('/zzz'))?.rule.id).toBe('any')
  })
})
