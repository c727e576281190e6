import { describe, expect, test } from 'bun:test'
import { mergeConditions } from '../../src/status/conditions.ts'
import { parseDuration } from '../../src/translate/duration.ts'
import { compareHostSpecificity, hostMatches, intersectHostnames, isValidHostname } from '../../src/translate/hostnames.ts'
import { compareRules, type RankedRule } from '../../src/translate/precedence.ts'
import { isReferenceAllowed } from '../../src/translate/reference-grant.ts'
import { selectorMatches } from '../../src/translate/selector.ts'
import type { HttpMatch } from '../../src/ir/types.ts'
import type { K8sObject } from '../../src/store/kinds.ts'

describe('parseDuration', () => {
  test.each([
    ['1s', 1000],
    ['500ms', 500],
    ['1h2m', 3_720_000],
    ['1h2m3s4ms', 3_723_004],
    ['0s', 0],
    ['10m', 600_000],
  ])('%s = %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms))
  test.each(['', '1', '1.5s', '-1s', '1d', 's', '1s ', '1h1h1h1h1h', 'ms1'])('%p is invalid', (s) => expect(parseDuration(s)).toBeUndefined())
  test('non-strings are invalid', () => {
    expect(parseDuration(5)).toBeUndefined()
    expect(parseDuration(null)).toBeUndefined()
  })
})

describe('hostnames', () => {
  test('validity', () => {
    expect(isValidHostname('example.com')).toBe(true)
    expect(isValidHostname('*.example.com')).toBe(true)
    expect(isValidHostname('*')).toBe(false)
    expect(isValidHostname('a.*.com')).toBe(false)
    expect(isValidHostname('Example.com')).toBe(false)
    expect(isValidHostname('10.0.0.1')).toBe(false)
  })
  test('intersection', () => {
    expect(intersectHostnames(undefined, [])).toEqual(['*'])
    expect(intersectHostnames('foo.com', [])).toEqual(['foo.com'])
    expect(intersectHostnames(undefined, ['a.com', 'a.com'])).toEqual(['a.com'])
    expect(intersectHostnames('*.example.com', ['a.example.com', 'a.b.example.com', 'example.com', '*.foo.example.com', '*.com'])).toEqual([
      'a.example.com',
      'a.b.example.com',
      '*.foo.example.com',
      '*.example.com',
    ])
    expect(intersectHostnames('api.example.com', ['*.example.com'])).toEqual(['api.example.com'])
    expect(intersectHostnames('api.example.com', ['*.api.example.com', 'other.com'])).toEqual([])
  })
  test('wildcards match one or more labels, not the bare domain', () => {
    expect(hostMatches('*.example.com', 'a.example.com')).toBe(true)
    expect(hostMatches('*.example.com', 'a.b.example.com')).toBe(true)
    expect(hostMatches('*.example.com', 'example.com')).toBe(false)
    expect(hostMatches('*.example.com', 'A.EXAMPLE.com')).toBe(true)
    expect(hostMatches(undefined, 'anything')).toBe(true)
  })
  test('specificity order: exact, longer wildcard, shorter wildcard, any', () => {
    const hosts = ['*', '*.example.com', 'a.example.com', '*.foo.example.com', undefined, 'b.com']
    expect([...hosts].sort(compareHostSpecificity)).toEqual(['a.example.com', 'b.com', '*.foo.example.com', '*.example.com', '*', undefined])
  })
})

describe('precedence', () => {
  const rank = (match: Partial<HttpMatch>, extra: Partial<RankedRule> = {}): RankedRule => ({
    rule: {
      id: JSON.stringify(match),
      owner: { kind: 'HTTPRoute', namespace: 'ns', name: 'r' },
      match: { path: { type: 'PathPrefix', value: '/' }, headers: [], query: [], ...match },
      filters: [],
      action: { kind: 'respond', status: 200 },
    },
    created: 0,
    routeKey: 'ns/r',
    ruleIndex: 0,
    matchIndex: 0,
    ...extra,
  })
  const order = (rules: RankedRule[]) => [...rules].sort(compareRules).map((r) => r.rule.id)
  test('path type and length, then method, headers, query', () => {
    const h = { name: 'x', type: 'Exact' as const, value: '1' }
    const rules = [
      rank({}),
      rank({ query: [h] }),
      rank({ headers: [h] }),
      rank({ headers: [h, { ...h, name: 'y' }] }),
      rank({ method: 'GET' }),
      rank({ path: { type: 'PathPrefix', value: '/longer' } }),
      rank({ path: { type: 'RegularExpression', value: '/r.*' } }),
      rank({ path: { type: 'Exact', value: '/e' } }),
    ]
    expect(order(rules)).toEqual(
      [7, 6, 5, 4, 3, 2, 1, 0].map((i) => rules[i]!.rule.id),
    )
  })
  test('ties: older route, then namespace/name, then rule and match index', () => {
    const a = rank({}, { created: 2, routeKey: 'a/a' })
    const b = rank({}, { created: 1, routeKey: 'z/z' })
    const c = rank({}, { created: 2, routeKey: 'a/b' })
    const d = rank({}, { created: 2, routeKey: 'a/a', ruleIndex: 1 })
    const e = rank({}, { created: 2, routeKey: 'a/a', ruleIndex: 1, matchIndex: 1 })
    expect([e, d, c, a, b].sort(compareRules)).toEqual([b, a, d, e, c])
  })
})

describe('mergeConditions', () => {
  const c = (status: 'True' | 'False', reason: string, message = 'm') => ({ type: 'Accepted', status, reason, message })
  test('keeps the time when status and reason are unchanged, even if the message changed', () => {
    const prev = [{ ...c('True', 'Accepted'), lastTransitionTime: 'T0' }]
    expect(mergeConditions(prev, [c('True', 'Accepted', 'other')], 'T1')[0]!.lastTransitionTime).toBe('T0')
  })
  test('stamps now on a transition or a new condition', () => {
    const prev = [{ ...c('True', 'Accepted'), lastTransitionTime: 'T0' }]
    expect(mergeConditions(prev, [c('False', 'Invalid')], 'T1')[0]!.lastTransitionTime).toBe('T1')
    expect(mergeConditions(undefined, [c('True', 'Accepted')], 'T1')[0]!.lastTransitionTime).toBe('T1')
  })
})

describe('ReferenceGrant', () => {
  const grant = (ns: string, from: object[], to: object[]): K8sObject => ({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: 'g', namespace: ns },
    spec: { from, to },
  })
  const from = { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'app' }
  const to = { group: '', kind: 'Service', namespace: 'db', name: 'pg' }
  test('same namespace needs no grant', () => expect(isReferenceAllowed(from, { ...to, namespace: 'app' }, [])).toBe(true))
  test('a grant naming the target, or all of its kind, allows it', () => {
    expect(isReferenceAllowed(from, to, [grant('db', [from], [{ group: '', kind: 'Service', name: 'pg' }])])).toBe(true)
    expect(isReferenceAllowed(from, to, [grant('db', [from], [{ group: '', kind: 'Service' }])])).toBe(true)
  })
  test('every field must match', () => {
    expect(isReferenceAllowed(from, to, [grant('app', [from], [{ group: '', kind: 'Service' }])])).toBe(false)
    expect(isReferenceAllowed(from, to, [grant('db', [{ ...from, kind: 'TCPRoute' }], [{ group: '', kind: 'Service' }])])).toBe(false)
    expect(isReferenceAllowed(from, to, [grant('db', [{ ...from, namespace: 'x' }], [{ group: '', kind: 'Service' }])])).toBe(false)
    expect(isReferenceAllowed(from, to, [grant('db', [from], [{ group: '', kind: 'Service', name: 'other' }])])).toBe(false)
    expect(isReferenceAllowed(from, to, [grant('db', [from], [{ group: '', kind: 'Secret' }])])).toBe(false)
  })
})

describe('label selectors', () => {
  const labels = { team: 'a', env: 'prod' }
  test('matchLabels and matchExpressions', () => {
    expect(selectorMatches({ matchLabels: { team: 'a' } }, labels)).toBe(true)
    expect(selectorMatches({ matchLabels: { team: 'b' } }, labels)).toBe(false)
    expect(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'dev'] }] }, labels)).toBe(true)
    expect(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, labels)).toBe(false)
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(true)
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'Exists' }] }, labels)).toBe(true)
    expect(selectorMatches({}, labels)).toBe(true)
  })
  test('malformed selectors match nothing', () => {
    expect(selectorMatches('team=a', labels)).toBe(false)
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'Like' }] }, labels)).toBe(false)
  })
})
