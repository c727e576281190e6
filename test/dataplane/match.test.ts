import { describe, expect, test } from 'bun:test'
import { HostnamePattern, normalizeHost, PortRouter, RuleMatcher, type MatchInput } from '../../src/dataplane/http/match.ts'
import type { HttpMatch, HttpRule } from '../../src/ir/types.ts'
import { listener, rule, vhost } from './ir.ts'

function input(path: string, opts: { method?: string; headers?: Record<string, string>; query?: string } = {}): MatchInput {
  const params = new URLSearchParams(opts.query ?? '')
  return { method: opts.method ?? 'GET', path, headers: new Headers(opts.headers), queryParam: (n) => params.get(n) ?? undefined }
}

function matcher(match: Partial<HttpMatch>): RuleMatcher {
  return new RuleMatcher({ path: { type: 'PathPrefix', value: '/' }, headers: [], query: [], ...match })
}

describe('path matching', () => {
  test('PathPrefix is segment-aware', () => {
    const m = matcher({ path: { type: 'PathPrefix', value: '/v2' } })
    expect(['/v2', '/v2/', '/v2/x', '/v2/x/y'].map((p) => m.matches(input(p)))).toEqual([true, true, true, true])
    expect(['/v2example', '/v', '/', '/v3/v2'].map((p) => m.matches(input(p)))).toEqual([false, false, false, false])
  })

  test('PathPrefix trailing slash is ignored', () => {
    const m = matcher({ path: { type: 'PathPrefix', value: '/v2/' } })
    expect(['/v2', '/v2/', '/v2/x'].map((p) => m.matches(input(p)))).toEqual([true, true, true])
    expect(m.matches(input('/v2example'))).toBe(false)
  })

  test('PathPrefix "/" matches everything', () => {
    const m = matcher({ path: { type: 'PathPrefix', value: '/' } })
    expect(m.matches(input('/'))).toBe(true)
    expect(m.matches(input('/anything/at/all'))).toBe(true)
  })

  test('Exact', () => {
    const m = matcher({ path: { type: 'Exact', value: '/one' } })
    expect(m.matches(input('/one'))).toBe(true)
    expect(m.matches(input('/one/'))).toBe(false)
    expect(m.matches(input('/onex'))).toBe(false)
  })

  test('RegularExpression is a full match', () => {
    const m = matcher({ path: { type: 'RegularExpression', value: '/v[0-9]+/.*' } })
    expect(m.matches(input('/v12/items'))).toBe(true)
    expect(m.matches(input('/x/v12/items'))).toBe(false)
    expect(matcher({ path: { type: 'RegularExpression', value: '/ab' } }).matches(input('/abc'))).toBe(false)
  })
})

describe('method, header and query matching', () => {
  test('method', () => {
    const m = matcher({ method: 'POST' })
    expect(m.matches(input('/', { method: 'POST' }))).toBe(true)
    expect(m.matches(input('/', { method: 'GET' }))).toBe(false)
  })

  test('header names are case-insensitive, values exact or regex', () => {
    const m = matcher({ headers: [{ name: 'version', type: 'Exact', value: 'two' }, { name: 'color', type: 'RegularExpression', value: 're+d' }] })
    expect(m.matches(input('/', { headers: { Version: 'two', COLOR: 'reeed' } }))).toBe(true)
    expect(m.matches(input('/', { headers: { version: 'Two', color: 'red' } }))).toBe(false)
    expect(m.matches(input('/', { headers: { version: 'two', color: 'redx' } }))).toBe(false)
    expect(m.matches(input('/', { headers: { version: 'two' } }))).toBe(false)
  })

  test('query params use the first value, names exact', () => {
    const m = matcher({ query: [{ name: 'animal', type: 'Exact', value: 'whale' }] })
    expect(m.matches(input('/', { query: 'animal=whale&animal=dolphin' }))).toBe(true)
    expect(m.matches(input('/', { query: 'animal=dolphin&animal=whale' }))).toBe(false)
    expect(m.matches(input('/', { query: 'Animal=whale' }))).toBe(false)
    const re = matcher({ query: [{ name: 'id', type: 'RegularExpression', value: '[0-9]+' }] })
    expect(re.matches(input('/', { query: 'id=42' }))).toBe(true)
    expect(re.matches(input('/', { query: 'id=42a' }))).toBe(false)
  })
})

describe('hostnames', () => {
  test('normalizeHost strips port and trailing dot, lower-cases, keeps IPv6 brackets', () => {
    expect(normalizeHost('Foo.Example.COM:8080')).toBe('foo.example.com')
    expect(normalizeHost('foo.example.com.')).toBe('foo.example.com')
    expect(normalizeHost('[::1]:8080')).toBe('[::1]')
    expect(normalizeHost(null)).toBe('')
  })

  test('wildcards match one or more labels, never the bare suffix', () => {
    const p = new HostnamePattern('*.example.com')
    expect(p.matches('a.example.com')).toBe(true)
    expect(p.matches('a.b.example.com')).toBe(true)
    expect(p.matches('example.com')).toBe(false)
    expect(p.matches('aexample.com')).toBe(false)
    expect(new HostnamePattern(undefined).matches('anything')).toBe(true)
    expect(new HostnamePattern('*').matches('anything')).toBe(true)
  })
})

describe('precedence', () => {
  const id = (name: string, partial: Parameters<typeof rule>[0] = {}): HttpRule => ({ ...rule(partial), id: name })
  const route = (router: PortRouter<{ matcher: RuleMatcher; id: string }>, host: string, path: string, opts = {}) =>
    router.route(host, input(path, opts))?.rule.id

  const build = (listeners: Parameters<typeof listener>[]) =>
    new PortRouter(listeners.map((args) => listener(...args)), (r) => ({ id: r.id, matcher: new RuleMatcher(r.match) }))

  test('most specific listener wins, even when listed last', () => {
    const router = build([
      [[vhost('*', [id('any')])]],
      [[vhost('*', [id('wild')])], '*.example.com'],
      [[vhost('*', [id('exact')])], 'foo.example.com'],
    ])
    expect(route(router, 'foo.example.com', '/')).toBe('exact')
    expect(route(router, 'bar.example.com', '/')).toBe('wild')
    expect(route(router, 'other.org', '/')).toBe('any')
  })

  test('a listener that owns the host does not fall back to another listener', () => {
    const router = build([
      [[vhost('foo.example.com', [id('foo-only', { match: { path: { type: 'Exact', value: '/foo' } } })])], 'foo.example.com'],
      [[vhost('*', [id('any')])]],
    ])
    expect(route(router, 'foo.example.com', '/foo')).toBe('foo-only')
    expect(route(router, 'foo.example.com', '/bar')).toBeUndefined()
  })

  test('virtual hosts: exact before wildcard before "*", falling through when no rule matches', () => {
    const router = build([
      [[
        vhost('a.example.com', [id('exact-api', { match: { path: { type: 'PathPrefix', value: '/api' } } })]),
        vhost('*.example.com', [id('wild')]),
        vhost('*', [id('star')]),
      ]],
    ])
    expect(route(router, 'a.example.com', '/api/x')).toBe('exact-api')
    expect(route(router, 'a.example.com', '/other')).toBe('wild')
    expect(route(router, 'b.c.example.com', '/')).toBe('wild')
    expect(route(router, 'example.com', '/')).toBe('star')
  })

  test('host matching ignores case and port', () => {
    const router = build([[[vhost('a.example.com', [id('a')])]]])
    expect(route(router, normalizeHost('A.Example.com:8080'), '/')).toBe('a')
  })

  test('first matching rule wins within a virtual host (IR order)', () => {
    const router = build([
      [[vhost('*', [
        id('exact', { match: { path: { type: 'Exact', value: '/v2' } } }),
        id('prefix-header', { match: { path: { type: 'PathPrefix', value: '/v2' }, headers: [{ name: 'x', type: 'Exact', value: '1' }] } }),
        id('prefix', { match: { path: { type: 'PathPrefix', value: '/v2' } } }),
      ])]],
    ])
    expect(route(router, 'h', '/v2')).toBe('exact')
    expect(route(router, 'h', '/v2/a', { headers: { x: '1' } })).toBe('prefix-header')
    expect(route(router, 'h', '/v2/a')).toBe('prefix')
    expect(route(router, 'h', '/v2example')).toBeUndefined()
  })
})
