/** The pure parts of Composites and sticky variants: shaping, merging, templates, session values. */
import { describe, expect, test } from 'bun:test'
import type { CompositeMemberIr, WeightedBackend } from '../../src/ir/types.ts'
import { allowFields, bodyFor, denyFields, getPath, mergeMembers, renameFields, shapeMember } from '../../src/dataplane/composite/shape.ts'
import { expand, pathParams } from '../../src/dataplane/composite/template.ts'
import { assignHook, compileSticky, pinnedIndex, variantId } from '../../src/dataplane/http/sticky.ts'
import { RequestState } from '../../src/dataplane/http/context.ts'

const member = (extra: Partial<CompositeMemberIr> = {}): CompositeMemberIr => ({ name: 'm', path: '/', required: true, ...extra })

describe('shaping', () => {
  const user = { id: 1, name: 'Ada', address: { city: 'London', zip: 'N1' }, secret: 'x' }

  test('dot paths: allow keeps (in the listed order), deny removes, neither mutates the input', () => {
    expect(allowFields(user, ['name', 'address.city', 'missing', 'id'])).toEqual({ name: 'Ada', address: { city: 'London' }, id: 1 })
    expect(Object.keys(allowFields(user, ['name', 'id']))).toEqual(['name', 'id'])
    expect(denyFields(user, ['secret', 'address.zip', 'nope.deeper'])).toEqual({ id: 1, name: 'Ada', address: { city: 'London' } })
    expect(user.address.zip).toBe('N1')
    expect(getPath({ a: { b: [1] } }, 'a.b')).toEqual([1])
    expect(getPath({ a: 1 }, 'a.b')).toBeUndefined()
  })

  test('mapping renames in place; target unwraps; lists are shaped per element; group nests', () => {
    expect(Object.keys(renameFields({ a: 1, total: 2, c: 3 }, [['total', 'amount']]))).toEqual(['a', 'amount', 'c'])
    const body = { data: [{ id: 1, total: 5, internal: 'x' }] }
    expect(shapeMember(body, member({ target: 'data', allow: ['id', 'total'], mapping: [['total', 'amount']], group: 'orders' }))).toEqual({ orders: [{ id: 1, amount: 5 }] })
    // no group and not an object: nested under the member's name
    expect(shapeMember([1, 2], member({ name: 'nums' }))).toEqual({ nums: [1, 2] })
    expect(shapeMember({ x: 1 }, member({ target: 'nothing', group: 'g' }))).toEqual({ g: null })
  })

  test('a "__proto__" key from a member stays a plain key', () => {
    const evil = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as Record<string, unknown>
    const merged = mergeMembers([['a', renameFields(evil, [])]], 'Error')
    expect('body' in merged && JSON.stringify(merged.body)).toBe('{"__proto__":{"polluted":true},"ok":1}')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('merging', () => {
  const parts: [string, Record<string, unknown>][] = [
    ['a', { name: 'a', x: 1 }],
    ['b', { name: 'b', y: 2 }],
  ]
  test('declared order, conflicts per rule', () => {
    expect(mergeMembers(parts, 'Error')).toEqual({ conflict: 'name', members: ['a', 'b'] })
    expect(JSON.stringify((mergeMembers(parts, 'First') as { body: unknown }).body)).toBe('{"name":"a","x":1,"y":2}')
    expect(JSON.stringify((mergeMembers(parts, 'Last') as { body: unknown }).body)).toBe('{"name":"b","x":1,"y":2}')
  })
  test('splitting: the body part a member gets', () => {
    const body = { user: { name: 'Ada' }, card: { number: '4242', cvc: '1' }, plan: 'pro' }
    expect(bodyFor(body, ['card.number', 'plan'])).toEqual({ card: { number: '4242' }, plan: 'pro' })
    expect(bodyFor(body, [])).toBe(body)
  })
})

describe('templates', () => {
  test('pathPattern names segments; extra segments are ignored; a literal mismatch gives nothing', () => {
    expect(pathParams('/profile/{id}', '/profile/42/extra')).toEqual(new Map([['id', '42']]))
    expect(pathParams('/profile/{id}', '/other/42')).toEqual(new Map())
    expect(pathParams('/profile/{id}', '/profile/')).toEqual(new Map())
    expect(pathParams('/p/{id}', '/p/%E2%82%AC')).toEqual(new Map([['id', '€']]))
    expect(pathParams('/p/{id}', '/p/%E2')).toEqual(new Map())
  })
  test('values are percent-encoded; the query is split off; a missing name is reported', () => {
    const v: Record<string, string> = { id: '../admin?x=1', q: 'a b' }
    expect(expand('/users/{id}', (n) => v[n])).toEqual({ path: '/users/..%2Fadmin%3Fx%3D1', query: '' })
    expect(expand('/orders?user={q}&limit=5', (n) => v[n])).toEqual({ path: '/orders', query: '?user=a%20b&limit=5' })
    expect(expand('/x/{nope}', (n) => v[n])).toEqual({ missing: 'nope' })
  })
})

describe('sticky variants', () => {
  const backends: WeightedBackend[] = [
    { weight: 90, target: { pool: 'default/v1:80' }, filters: [] },
    { weight: 10, target: { pool: 'default/v2:80' }, filters: [] },
  ]
  const state = (headers: Record<string, string>) => new RequestState(new Request('http://x/', { headers }), 'GET', '/', '', 'x', '127.0.0.1', 'http', 80)

  test('the value names the backendRef, not its position: a reordered rule keeps the pin', () => {
    const plan = compileSticky({ type: 'Cookie', name: 'ab' }, backends)
    const h = new Headers()
    assignHook(plan, 1, 1_000_000)(state({}), h, 200)
    const cookie = h.get('set-cookie')!
    expect(cookie).toStartWith(`ab=${variantId('default/v2:80')}.`)
    expect(cookie).toContain('; Path=/; HttpOnly; SameSite=Lax')
    const reordered = compileSticky({ type: 'Cookie', name: 'ab' }, [backends[1]!, backends[0]!])
    expect(pinnedIndex(reordered, state({ cookie: cookie.split(';')[0]! }), 1_000_000)).toBe(0)
    // a removed variant (or a forged value) is not pinned
    expect(pinnedIndex(compileSticky({ type: 'Cookie', name: 'ab' }, [backends[0]!]), state({ cookie: cookie.split(';')[0]! }), 1_000_000)).toBeUndefined()
    expect(pinnedIndex(plan, state({ cookie: 'ab=forged' }), 1_000_000)).toBeUndefined()
  })

  test('absoluteTimeout: Max-Age on the cookie, and an old value is no longer honoured', () => {
    const plan = compileSticky({ type: 'Header', name: 'X-Variant-Session', absoluteTimeoutMs: 60_000 }, backends)
    const h = new Headers()
    assignHook(plan, 0, 1_000_000)(state({}), h, 200)
    const value = h.get('x-variant-session')!
    expect(pinnedIndex(plan, state({ 'x-variant-session': value }), 1_030_000)).toBe(0)
    expect(pinnedIndex(plan, state({ 'x-variant-session': value }), 1_070_000)).toBeUndefined()
    expect(compileSticky({ type: 'Cookie', name: 'c', absoluteTimeoutMs: 604_800_000 }, backends).cookieAttributes).toContain('Max-Age=604800')
  })
})
