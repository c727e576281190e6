/**
 * Rate limiting in pieces: selectors (Envoy Gateway semantics), the shared local table (windows,
 * eviction, exact across worker threads), translation (schema, defaults, what the schema cannot
 * say), and the shared policy contract (policy.case.ts) for local and global rules.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { compileSelectors } from '../../src/policy/rate-limit/selectors.ts'
import { SharedCounters } from '../../src/policy/rate-limit/local-store.ts'
import { RATE_LIMIT_FIELDS, rateLimitFeature } from '../../src/policy/rate-limit/translate.ts'
import { rateLimitRuntime } from '../../src/policy/rate-limit/runtime.ts'
import type { ClientSelector, RateLimitSpec } from '../../src/policy/rate-limit/spec.ts'
import type { PolicyRequest } from '../../src/policy/runtime.ts'
import { validate } from '../../src/policy/schema.ts'
import { PolicyStateRegistry } from '../../src/dataplane/policy-state.ts'
import { configureRedis, redisSettings, sharedRedis } from '../../src/shared/redis.ts'
import { runPolicyCase, strictRequest, type PathResult } from '../policy/policy.case.ts'
import { RedisServer, redisAvailable } from '../support/redis-server.ts'

function req(p: { method?: string; path?: string; query?: string; headers?: Record<string, string>; ip?: string } = {}): PolicyRequest {
  const base = strictRequest(p.headers ?? {}, p.method ?? 'GET') as PolicyRequest & { path: string; query: string }
  return Object.assign(Object.create(null), {
    method: p.method ?? 'GET',
    path: p.path ?? '/',
    query: p.query ?? '',
    host: 'x',
    header: base.header,
    peerIp: p.ip ?? '10.0.0.1',
    clientIp: p.ip ?? '10.0.0.1',
    setUpstreamHeader() {},
    removeUpstreamHeader() {},
    generateRequestId: true,
    requestId: undefined,
  }) as PolicyRequest
}

const sel = (...s: ClientSelector[]) => compileSelectors(s)

describe('selectors', () => {
  test('no selectors: every request, one bucket', () => {
    expect(sel()(req())).toBe('')
  })
  test('header Exact, missing header, invert', () => {
    const gold = sel({ headers: [{ name: 'x-tier', type: 'Exact', value: 'gold', invert: false }] })
    expect(gold(req({ headers: { 'x-tier': 'gold' } }))).toBe('')
    expect(gold(req({ headers: { 'x-tier': 'free' } }))).toBeUndefined()
    expect(gold(req())).toBeUndefined()
    const notGold = sel({ headers: [{ name: 'x-tier', type: 'Exact', value: 'gold', invert: true }] })
    expect(notGold(req({ headers: { 'x-tier': 'free' } }))).toBe('')
    expect(notGold(req())).toBe('') // absent: matches when inverted (Envoy's header matcher)
    expect(notGold(req({ headers: { 'x-tier': 'gold' } }))).toBeUndefined()
  })
  test('RegularExpression matches the whole value', () => {
    const s = sel({ headers: [{ name: 'x-key', type: 'RegularExpression', value: 'k-[0-9]+', invert: false }] })
    expect(s(req({ headers: { 'x-key': 'k-12' } }))).toBe('')
    expect(s(req({ headers: { 'x-key': 'k-12x' } }))).toBeUndefined()
    expect(s(req({ headers: { 'x-key': 'xk-12' } }))).toBeUndefined()
  })
  test('Distinct: the value is the bucket; absent does not match', () => {
    const s = sel({ headers: [{ name: 'x-user', type: 'Distinct', invert: false }] })
    const a = s(req({ headers: { 'x-user': 'alice' } }))
    const b = s(req({ headers: { 'x-user': 'bob' } }))
    expect(a).toBeString()
    expect(a).not.toBe(b)
    expect(s(req())).toBeUndefined()
  })
  test('several headers AND-ed; several selectors AND-ed, distinct parts joined', () => {
    const s = sel({ headers: [{ name: 'x-tier', type: 'Exact', value: 'gold', invert: false }, { name: 'x-user', type: 'Distinct', invert: false }] }, { methods: [{ value: 'POST', invert: false }] })
    expect(s(req({ method: 'POST', headers: { 'x-tier': 'gold', 'x-user': 'a' } }))).toContain('a')
    expect(s(req({ method: 'GET', headers: { 'x-tier': 'gold', 'x-user': 'a' } }))).toBeUndefined()
    expect(s(req({ method: 'POST', headers: { 'x-user': 'a' } }))).toBeUndefined()
  })
  test('methods OR-ed, invert', () => {
    const writes = sel({ methods: [{ value: 'POST', invert: false }, { value: 'PUT', invert: false }] })
    expect(writes(req({ method: 'PUT' }))).toBe('')
    expect(writes(req({ method: 'GET' }))).toBeUndefined()
    const notGet = sel({ methods: [{ value: 'GET', invert: true }] })
    expect(notGet(req({ method: 'DELETE' }))).toBe('')
    expect(notGet(req({ method: 'GET' }))).toBeUndefined()
  })
  test('path: PathPrefix by segments, Exact, RegularExpression, invert', () => {
    const prefix = sel({ path: { type: 'PathPrefix', value: '/api/', invert: false } })
    expect(prefix(req({ path: '/api' }))).toBe('')
    expect(prefix(req({ path: '/api/x' }))).toBe('')
    expect(prefix(req({ path: '/apix' }))).toBeUndefined()
    expect(sel({ path: { type: 'PathPrefix', value: '/', invert: false } })(req({ path: '/anything' }))).toBe('')
    expect(sel({ path: { type: 'Exact', value: '/login', invert: false } })(req({ path: '/login/' }))).toBeUndefined()
    expect(sel({ path: { type: 'RegularExpression', value: '/v[0-9]+/.*', invert: false } })(req({ path: '/v2/x' }))).toBe('')
    expect(sel({ path: { type: 'PathPrefix', value: '/health', invert: true } })(req({ path: '/health' }))).toBeUndefined()
  })
  test('sourceCIDR Exact and Distinct on the client IP (IPv4, IPv6, v4-mapped)', () => {
    const range = sel({ sourceCIDR: { type: 'Exact', value: '10.0.0.0/8' } })
    expect(range(req({ ip: '10.1.2.3' }))).toBe('')
    expect(range(req({ ip: '192.168.0.1' }))).toBeUndefined()
    expect(range(req({ ip: '::ffff:10.9.9.9' }))).toBe('')
    const each = sel({ sourceCIDR: { type: 'Distinct', value: '0.0.0.0/0' } })
    expect(each(req({ ip: '1.2.3.4' }))).toContain('1.2.3.4')
    expect(each(req({ ip: '1.2.3.5' }))).toContain('1.2.3.5')
    expect(each(req({ ip: '2001:db8::1' }))).toBeUndefined()
    expect(sel({ sourceCIDR: { type: 'Exact', value: '2001:db8::/32' } })(req({ ip: '2001:db8::7' }))).toBe('')
  })
  test('queryParams (Portico extension)', () => {
    const s = sel({ queryParams: [{ name: 'api_key', type: 'Distinct', invert: false }] })
    expect(s(req({ query: '?api_key=k1&x=2' }))).toContain('k1')
    expect(s(req({ query: '?x=2' }))).toBeUndefined()
    expect(s(req())).toBeUndefined()
    expect(sel({ queryParams: [{ name: 'debug', type: 'Exact', value: '1', invert: false }] })(req({ query: '?debug=1' }))).toBe('')
  })
})

describe('shared local counters', () => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 30)
  test('fixed windows aligned on the unit: counts, then a new window starts at zero', () => {
    const c = new SharedCounters(undefined, 1024)
    expect(c.hit(1, 2, 60, 1, now)).toEqual({ count: 1, resetAt: Date.UTC(2030, 0, 1, 12, 1, 0) / 1000 })
    expect(c.hit(1, 2, 60, 1, now + 1000).count).toBe(2)
    expect(c.hit(1, 2, 60, 3, now + 2000).count).toBe(5)
    expect(c.hit(1, 3, 60, 1, now).count).toBe(1) // another key
    expect(c.hit(1, 2, 60, 1, now + 30_000).count).toBe(1) // next minute
  })
  test('a full neighbourhood: the slot whose window ends first is taken over, and counted', () => {
    const c = new SharedCounters(undefined, 16)
    for (let k = 0; k < 16; k++) c.hit(k * 16 + 5, 1, 3600, 1, now) // all land around slot 5
    expect(c.evictions).toBeGreaterThan(0)
  })
  test('metric slots: claimed once, read back', () => {
    const c = new SharedCounters(undefined, 16)
    const s = c.metricSlot(77, 88)
    expect(c.metricSlot(77, 88)).toBe(s)
    c.count(s, 2, 3)
    c.count(s, 3)
    expect(c.readMetrics(77, 88)).toEqual({ allowed: 3, limited: 1, errors: 0, failedOpen: 0 })
    expect(c.readMetrics(78, 88)).toBeUndefined()
  })
  test('exact across threads: 4 workers × 20,000 hits on one bucket with limit 1000 → exactly 1000 allowed', async () => {
    const c = new SharedCounters(undefined, 1024)
    const run = (keys: number) =>
      Promise.all(
        Array.from({ length: 4 }, () => {
          const w = new Worker(new URL('./counter-worker.ts', import.meta.url).href)
          return new Promise<number>((resolve) => {
            w.onmessage = (e) => {
              resolve(e.data as number)
              w.terminate()
            }
            w.postMessage({ buffer: c.buffer, hits: 20_000, limit: 1000, now, keys })
          })
        }),
      )
    const one = await run(1)
    expect(one.reduce((a, b) => a + b, 0)).toBe(1000)
    // and per key, with 8 keys in the same neighbourhood (hash 1234..1241): 1000 each
    const c2 = await run(8)
    expect(c2.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(8 * 1000 - 1000) // keys 0..7 share slots with the first run's key 1234
  }, 30_000)
})

describe('translation', () => {
  const check = (rateLimit: unknown) => validate(RATE_LIMIT_FIELDS.rateLimit, rateLimit, 'spec.rateLimit')
  test("the issue's example is valid and translates with defaults", () => {
    const rl = {
      global: {
        rules: [
          { clientSelectors: [{ headers: [{ name: 'x-user', type: 'Distinct' }] }], limit: { requests: 20, unit: 'Minute' } },
          { clientSelectors: [{ headers: [{ name: 'x-tier', value: 'gold' }], sourceCIDR: { type: 'Distinct', value: '0.0.0.0/0' } }], limit: { requests: 1000, unit: 'Hour' } },
        ],
      },
    }
    expect(check(rl).errors).toEqual([])
    const f = rateLimitFeature({ rateLimit: rl })
    expect(typeof f).toBe('object')
    const spec = (f as { spec: RateLimitSpec }).spec
    expect(spec.global!.timeoutMs).toBe(50)
    expect(spec.global!.failClosed).toBe(false)
    expect(spec.responseHeaders).toBe('Limited')
    expect(spec.global!.rules[0]).toEqual({ clientSelectors: [{ headers: [{ name: 'x-user', type: 'Distinct', invert: false }] }], requests: 20, unit: 'Minute', cost: 1, shared: false, shadowMode: false })
    expect(spec.global!.rules[1]!.clientSelectors[0]!.headers![0]).toEqual({ name: 'x-tier', type: 'Exact', value: 'gold', invert: false })
  })
  test('schema errors: Distinct with a value, Exact without, empty selector, bad unit, unknown field', () => {
    const rule = (s: unknown, limit: unknown = { requests: 1, unit: 'Second' }) => ({ local: { rules: [{ clientSelectors: [s], limit }] } })
    expect(check(rule({ headers: [{ name: 'x', type: 'Distinct', value: 'v' }] })).errors.join()).toContain('Distinct')
    expect(check(rule({ headers: [{ name: 'x' }] })).errors.join()).toContain('value is required')
    expect(check(rule({})).errors.join()).toContain('at least one of')
    expect(check(rule({ methods: [{ value: 'GET' }] }, { requests: 1, unit: 'Week' })).errors.join()).toContain('must be one of')
    expect(check({ local: { rules: [] }, burst: 3 }).errors.join()).toContain('unknown field "burst"')
    expect(check({ global: { rules: [{ limit: { requests: 1, unit: 'Second' }, cost: { response: { from: 'Number', number: 1 } } }] } }).unsupported).toEqual(['spec.rateLimit.global.rules[0].cost.response'])
  })
  test('what the schema cannot say: bad CIDR, bad regex, Metadata cost', () => {
    const one = (s: unknown, extra: object = {}) => rateLimitFeature({ rateLimit: { local: { rules: [{ clientSelectors: [s], limit: { requests: 1, unit: 'Second' }, ...extra }] } } })
    expect(one({ sourceCIDR: { value: '10.0.0.0/33' } })).toContain('not an address range')
    expect(one({ sourceCIDR: { value: 'nope' } })).toContain('not an address range')
    expect(one({ headers: [{ name: 'x', type: 'RegularExpression', value: '(' }] })).toContain('not a valid regular expression')
    expect(one({ methods: [{ value: 'GET' }] }, { cost: { request: { from: 'Metadata' } } })).toContain('Metadata')
    expect(typeof one({ sourceCIDR: { value: '2001:db8::/64' } })).toBe('object')
  })
  test('extensions: failClosed, timeout, responseHeaders, queryParams; cost and shared', () => {
    const f = rateLimitFeature({
      rateLimit: {
        responseHeaders: 'All',
        global: { failClosed: true, timeout: '20ms', rules: [{ clientSelectors: [{ queryParams: [{ name: 'k', type: 'Distinct' }] }], limit: { requests: 5, unit: 'Day' }, cost: { request: { from: 'Number', number: 2 } }, shared: true }] },
      },
    }) as { spec: RateLimitSpec }
    expect(f.spec.responseHeaders).toBe('All')
    expect(f.spec.global).toMatchObject({ failClosed: true, timeoutMs: 20 })
    expect(f.spec.global!.rules[0]).toMatchObject({ cost: 2, shared: true, unit: 'Day' })
  })
})

describe('runtime', () => {
  const compile = (spec: RateLimitSpec, ruleId = 'r1', id = `btp/x/${Math.random()}#rateLimit`) => rateLimitRuntime.compile({ name: 'rateLimit', id, spec }, { pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined, ruleId })
  const local = (requests: number, extra: Partial<RateLimitSpec> = {}): RateLimitSpec => ({ local: { rules: [{ clientSelectors: [], requests, unit: 'Hour', cost: 1, shared: false, shadowMode: false }] }, responseHeaders: 'Limited', ...extra })

  test('local only: head-only, synchronous; 429 with Retry-After and X-RateLimit-*', () => {
    const p = compile(local(2))
    expect(p.headOnly).toBe(true)
    expect(p.onRequest!(req())).toBeUndefined()
    expect(p.onRequest!(req())).toBeUndefined()
    const v = p.onRequest!(req()) as { status: number; headers: [string, string][] }
    expect(v.status).toBe(429)
    const h = new Map(v.headers)
    expect(h.get('x-ratelimit-limit')).toBe('2')
    expect(h.get('x-ratelimit-remaining')).toBe('0')
    expect(Number(h.get('retry-after'))).toBeGreaterThan(0)
  })
  test('buckets: per route rule by default, one across routes with shared; a recompile (snapshot swap) keeps the count', () => {
    const id = `btp/x/${Math.random()}#rateLimit`
    const spec = local(1)
    expect(compile(spec, 'route-a', id).onRequest!(req())).toBeUndefined()
    expect(compile(spec, 'route-b', id).onRequest!(req())).toBeUndefined()
    expect((compile(spec, 'route-a', id).onRequest!(req()) as { status: number }).status).toBe(429)
    const shared: RateLimitSpec = { local: { rules: [{ ...spec.local!.rules[0]!, shared: true }] }, responseHeaders: 'Limited' }
    const id2 = `btp/y/${Math.random()}#rateLimit`
    expect(compile(shared, 'route-a', id2).onRequest!(req())).toBeUndefined()
    expect((compile(shared, 'route-b', id2).onRequest!(req()) as { status: number }).status).toBe(429)
    // a changed limit keeps the count: 2 allowed in total now
    const raised: RateLimitSpec = { local: { rules: [{ ...shared.local!.rules[0]!, requests: 2 }] }, responseHeaders: 'Limited' }
    expect(compile(raised, 'route-c', id2).onRequest!(req())).toBeDefined()
  })
  test('shadowMode counts but never refuses; responseHeaders None leaves X-RateLimit-* out', () => {
    const shadow = compile({ local: { rules: [{ clientSelectors: [], requests: 0, unit: 'Hour', cost: 1, shared: false, shadowMode: true }] }, responseHeaders: 'Limited' })
    expect(shadow.onRequest!(req())).toBeUndefined()
    const none = compile(local(0, { responseHeaders: 'None' }))
    const v = none.onRequest!(req()) as unknown as { headers: [string, string][] }
    expect(v.headers.map(([n]) => n)).toEqual(['retry-after'])
  })
  test('responseHeaders All: a response hook (so not head-only) that adds the standing to allowed responses', () => {
    const p = compile(local(5, { responseHeaders: 'All' }))
    expect(p.headOnly).toBe(false)
    const r = req()
    expect(p.onRequest!(r)).toBeUndefined()
    const headers = new Headers()
    p.onResponseHead!({ status: 200, headers }, r)
    expect(headers.get('x-ratelimit-limit')).toBe('5')
    expect(headers.get('x-ratelimit-remaining')).toBe('4')
  })
  test('global without Redis configured: fails open (or 503 with failClosed)', async () => {
    const saved = redisSettings()
    configureRedis(undefined)
    const g = (failClosed: boolean) => compile({ global: { rules: [{ clientSelectors: [], requests: 1, unit: 'Hour', cost: 1, shared: false, shadowMode: false }], failClosed, timeoutMs: 50 }, responseHeaders: 'Limited' })
    // awaits Redis, but reads only the head: the front's direct path awaits it
    expect(g(false).headOnly).toBe(true)
    expect(await g(false).onRequest!(req())).toBeUndefined()
    expect(((await g(true).onRequest!(req())) as { status: number }).status).toBe(503)
    configureRedis(saved)
    if (saved) for (let i = 0; i < 100 && (await sharedRedis()!.call('PING', [], 200).catch(() => '')) !== 'PONG'; i++) await Bun.sleep(20)
  })
})

// ---------------------------------------------------------------- the shared contract

const CASE_USER = `u-${process.pid}-${Date.now()}`
const limited = (r: PathResult) => expect(r.status).toBe(429)
const passed = (r: PathResult) => expect(r.status).toBe(200)

runPolicyCase({
  name: 'rateLimit',
  variants: [
    {
      label: 'local, 2 per hour for everyone',
      spec: { local: { rules: [{ clientSelectors: [], requests: 2, unit: 'Hour', cost: 1, shared: false, shadowMode: false }] }, responseHeaders: 'Limited' },
      requests: [
        { name: 'first passes', expect: passed },
        { name: 'second passes', expect: passed },
        { name: 'third is limited', expect: limited },
      ],
    },
    {
      label: 'local, per user (Distinct), gold tier exempt (inverted Exact)',
      spec: {
        local: {
          rules: [
            {
              clientSelectors: [{ headers: [{ name: 'x-user', type: 'Distinct', invert: false }, { name: 'x-tier', type: 'Exact', value: 'gold', invert: true }] }],
              requests: 1,
              unit: 'Hour',
              cost: 1,
              shared: false,
              shadowMode: false,
            },
          ],
        },
        responseHeaders: 'Limited',
      },
      requests: [
        { name: 'alice 1', headers: { 'x-user': 'alice' }, expect: passed },
        { name: 'alice 2 limited', headers: { 'x-user': 'alice' }, expect: limited },
        { name: 'bob unaffected', headers: { 'x-user': 'bob' }, expect: passed },
        { name: 'gold alice exempt', headers: { 'x-user': 'alice', 'x-tier': 'gold' }, expect: passed },
        { name: 'no user: not counted', expect: passed },
      ],
    },
    ...(redisAvailable()
      ? [
          {
            label: 'global (Redis), 1 per hour per user',
            spec: {
              global: { rules: [{ clientSelectors: [{ headers: [{ name: 'x-user', type: 'Distinct' as const, invert: false }] }], requests: 1, unit: 'Hour' as const, cost: 1, shared: false, shadowMode: false }], failClosed: false, timeoutMs: 200 },
              responseHeaders: 'Limited' as const,
            },
            requests: [
              { name: 'first passes', headers: { 'x-user': CASE_USER }, expect: passed },
              { name: 'second limited', headers: { 'x-user': CASE_USER }, expect: limited },
            ],
          },
        ]
      : []),
  ],
})

let redis: RedisServer | undefined
beforeAll(async () => {
  if (!redisAvailable()) return
  redis = await RedisServer.start()
  configureRedis({ url: redis.url })
  // connected before the contract's requests (a request before that fails open, uncounted)
  for (let i = 0; i < 100; i++) {
    if ((await sharedRedis()!.call('PING', [], 200).catch(() => '')) === 'PONG') break
    await Bun.sleep(20)
  }
})
afterAll(async () => {
  configureRedis(undefined)
  await redis?.stop()
})
