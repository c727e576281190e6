/**
 * Backend traffic policies in the HTTP data plane, over real sockets: refused connects tried on
 * another endpoint (direct path and pipeline), prompt re-admission of a returning endpoint,
 * passive health thresholds, circuit limits, retry triggers and budget, Maglev hashing and the
 * generated hash cookie. IR built by hand (ir.ts).
 */
import { afterEach, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { closedPort, startDataplane, type Running } from './harness.ts'
import { pool, rule, simple } from './ir.ts'
import type { BackendPool, HttpRule } from '../../src/ir/types.ts'
import { ConsistentHashPicker, maglevTable } from '../../src/dataplane/upstream/policies/consistent-hash.ts'
import { EndpointState } from '../../src/dataplane/upstream/registry.ts'
import { RetryBudgetState } from '../../src/dataplane/upstream/circuit.ts'

/** A named backend that can be stopped and started again on the same port. */
class Backend {
  server: Server<undefined> | undefined
  hits = 0
  inFlight = 0
  maxInFlight = 0
  constructor(
    readonly name: string,
    public port = 0,
    readonly status = 200,
  ) {}
  start(): this {
    this.server = Bun.serve({
      port: this.port,
      hostname: '127.0.0.1',
      fetch: async (req) => {
        this.hits++
        this.inFlight++
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
        const delay = Number(new URL(req.url).searchParams.get('delay') ?? 0)
        if (delay) await Bun.sleep(delay)
        if (req.body) await req.text()
        this.inFlight--
        return new Response(this.name, { status: this.status, headers: { 'x-name': this.name } })
      },
    })
    this.port = this.server.port!
    return this
  }
  async stop(): Promise<void> {
    await this.server?.stop(true)
    this.server = undefined
  }
}

const running: { stop(): Promise<void> }[] = []
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop()
})

function backends(...names: string[]): Backend[] {
  const out = names.map((n) => new Backend(n).start())
  running.push(...out)
  return out
}

async function gateway(rules: HttpRule[], pools: BackendPool[]): Promise<Running> {
  const gw = await startDataplane(simple(0, rules, pools))
  running.push(gw)
  return gw
}

/** A rule that is not direct (a request header filter): served by the pipeline. */
function pipelineRule(partial: Partial<HttpRule> = {}): HttpRule {
  return rule({ filters: [{ type: 'RequestHeaderModifier', set: [['x-pipeline', '1']], add: [], remove: [] }], ...partial })
}

async function burst(base: string, n: number, init?: RequestInit, path = '/x'): Promise<{ statuses: number[]; names: string[] }> {
  const responses = await Promise.all(Array.from({ length: n }, () => fetch(base + path, init).then(async (r) => ({ status: r.status, name: await r.text() }))))
  return { statuses: responses.map((r) => r.status), names: responses.map((r) => r.name) }
}

describe('a refused connection is tried on another endpoint at once', () => {
  for (const [path, make] of [
    ['direct path', rule],
    ['pipeline', pipelineRule],
  ] as const) {
    test(`${path}: one of two endpoints killed mid-run, 0 of the next concurrent GETs and POSTs fail`, async () => {
      const [a, b] = backends('a', 'b')
      const gw = await gateway([make()], [pool('p1', [a!.port, b!.port])])
      const before = await burst(gw.base, 40)
      expect(before.statuses.every((s) => s === 200)).toBe(true)
      expect(new Set(before.names)).toEqual(new Set(['a', 'b']))
      await a!.stop()
      const after = await burst(gw.base, 40)
      expect(after.statuses.filter((s) => s !== 200)).toEqual([])
      expect(after.names.every((n) => n === 'b')).toBe(true)
      // Any method: a POST never reached the dead endpoint either.
      const posts = await burst(gw.base, 20, { method: 'POST', body: 'hello' })
      expect(posts.statuses.filter((s) => s !== 200)).toEqual([])
    })
  }

  test('bounded: every endpoint refuses → 502 after each was tried once', async () => {
    const dead = [await closedPort(), await closedPort(), await closedPort()]
    const gw = await gateway([rule()], [pool('p1', dead)])
    const res = await fetch(`${gw.base}/x`)
    expect(res.status).toBe(502)
  })

  test('continuous load while an endpoint stops: no request fails', async () => {
    const [a, b] = backends('a', 'b')
    const gw = await gateway([rule()], [pool('p1', [a!.port, b!.port])])
    let failures = 0
    let total = 0
    let stopAt = 0
    const until = Date.now() + 1200
    const worker = async () => {
      while (Date.now() < until) {
        const res = await fetch(`${gw.base}/x`)
        await res.text()
        total++
        if (res.status !== 200) failures++
      }
    }
    const load = Promise.all(Array.from({ length: 8 }, worker))
    await Bun.sleep(400)
    stopAt = total
    await a!.server!.stop() // stops accepting; in-flight requests finish
    await load
    expect(stopAt).toBeGreaterThan(0)
    expect(total).toBeGreaterThan(stopAt)
    expect(failures).toBe(0)
  })
})

describe('a returning endpoint gets traffic again promptly', () => {
  test('ejected for refusing, re-admitted by the recovery probe within a second of coming back', async () => {
    const [a, b] = backends('a', 'b')
    const gw = await gateway([rule()], [pool('p1', [a!.port, b!.port])])
    await a!.stop()
    // Enough refusals to eject it (5 in a row by default).
    for (let i = 0; i < 4; i++) expect((await burst(gw.base, 10)).statuses.every((s) => s === 200)).toBe(true)
    const state = gw.dp.registry.list().find((e) => e.port === a!.port)!
    expect(state.ejectedUntil).toBeGreaterThan(Date.now())
    a!.start()
    await Bun.sleep(1000)
    const names = (await burst(gw.base, 40)).names
    expect(names.filter((n) => n === 'a').length).toBeGreaterThan(10)
  })
})

describe('passive health from the policy', () => {
  test('consecutive5xxErrors ejects an endpoint that answers 500; maxEjectionPercent never ejects the whole pool', async () => {
    const bad = new Backend('bad', 0, 500).start()
    const bad2 = new Backend('bad2', 0, 500).start()
    const [good] = backends('good')
    running.push(bad, bad2)
    const passive = { consecutive5xxErrors: 3, consecutiveGatewayErrors: 0, consecutiveLocalOriginFailures: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100 }
    const p: BackendPool = { ...pool('p1', [bad.port, bad2.port, good!.port]), healthCheck: { passive } }
    const gw = await gateway([rule()], [p])
    for (let i = 0; i < 12; i++) await (await fetch(`${gw.base}/x`)).text()
    const ejected = gw.dp.registry.list().filter((e) => e.ejectedUntil > Date.now()).map((e) => e.port)
    expect(ejected.sort()).toEqual([bad.port, bad2.port].sort())
    const names = (await burst(gw.base, 20)).names
    expect(names.every((n) => n === 'good')).toBe(true)

    // Now a pool of two bad endpoints: at most one is ejected.
    const only: BackendPool = { ...pool('p2', [bad.port, bad2.port]), healthCheck: { passive: { ...passive, maxEjectionPercent: 100 } } }
    const gw2 = await gateway([rule({ action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'p2' }, filters: [] }] } })], [only])
    for (let i = 0; i < 12; i++) await (await fetch(`${gw2.base}/x`)).text()
    expect(gw2.dp.registry.list().filter((e) => e.ejectedUntil > Date.now()).length).toBe(1)
  })
})

describe('circuit breaker', () => {
  const limits = { maxConnections: 2, maxPendingRequests: 0, maxParallelRequests: 2, maxParallelRetries: 1 }
  for (const [path, make] of [
    ['direct path', rule],
    ['pipeline', pipelineRule],
  ] as const) {
    test(`${path}: beyond maxParallelRequests → 503 with x-portico-overload, and it recovers`, async () => {
      const [slow] = backends('slow')
      const gw = await gateway([make()], [{ ...pool('p1', [slow!.port]), circuitBreaker: { ...limits, maxConnections: 10 } }])
      const responses = await Promise.all(Array.from({ length: 6 }, () => fetch(`${gw.base}/x?delay=300`)))
      const statuses = responses.map((r) => r.status).sort()
      expect(statuses.filter((s) => s === 200).length).toBe(2)
      expect(statuses.filter((s) => s === 503).length).toBe(4)
      const rejected = responses.find((r) => r.status === 503)!
      expect(rejected.headers.get('x-portico-overload')).toBe('circuit-open maxParallelRequests')
      expect(slow!.maxInFlight).toBeLessThanOrEqual(2)
      // Load dropped: served again.
      expect((await burst(gw.base, 2)).statuses).toEqual([200, 200])
      const circuit = gw.dp.registry.circuits().find((c) => c.poolKey === 'p1')!
      expect(circuit.overflows.maxParallelRequests).toBe(4)
      expect(circuit.active).toBe(0)
    })
  }

  test('beyond maxConnections requests queue up to maxPendingRequests, then 503 maxPendingRequests', async () => {
    const [slow] = backends('slow')
    const gw = await gateway([rule()], [{ ...pool('p1', [slow!.port]), circuitBreaker: { maxConnections: 1, maxPendingRequests: 2, maxParallelRequests: 100, maxParallelRetries: 1 } }])
    const responses = await Promise.all(Array.from({ length: 5 }, () => fetch(`${gw.base}/x?delay=200`)))
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 200).length).toBe(3)
    expect(statuses.filter((s) => s === 503).length).toBe(2)
    expect(responses.find((r) => r.status === 503)!.headers.get('x-portico-overload')).toBe('circuit-open maxPendingRequests')
    expect(slow!.maxInFlight).toBe(1)
    const circuit = gw.dp.registry.circuits().find((c) => c.poolKey === 'p1')!
    expect(circuit.active).toBe(0)
    expect(circuit.pending).toBe(0)
  })
})

describe('retry triggers and budget', () => {
  test('retryOn triggers gateway-error: a 503 is retried on the other endpoint, a 500 is not', async () => {
    const five03 = new Backend('busy', 0, 503).start()
    const five00 = new Backend('broken', 0, 500).start()
    const [ok] = backends('ok')
    running.push(five03, five00)
    const retry = { codes: [], attempts: 2, backoffMs: 0, triggers: ['gateway-error' as const] }
    const gw = await gateway(
      [
        rule({ match: { path: { type: 'PathPrefix', value: '/a' } }, retry, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'a' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/b' } }, retry, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'b' }, filters: [] }] } }),
      ],
      [pool('a', [five03.port, ok!.port]), pool('b', [five00.port])],
    )
    for (let i = 0; i < 6; i++) expect((await fetch(`${gw.base}/a`)).status).toBe(200)
    five00.hits = 0
    expect((await fetch(`${gw.base}/b`)).status).toBe(500)
    expect(five00.hits).toBe(1)
  })

  test('the retry budget caps retries at its share of requests (beyond minRetryRate)', async () => {
    const bad = new Backend('bad', 0, 503).start()
    running.push(bad)
    const retry = { codes: [503], attempts: 3, backoffMs: 0 }
    const budget = { percent: 20, intervalMs: 10_000, minRetryCount: 0, minRetryIntervalMs: 1000 }
    const gw = await gateway([rule({ retry })], [{ ...pool('p1', [bad.port]), retryBudget: budget }])
    for (let i = 0; i < 50; i++) await (await fetch(`${gw.base}/x`)).text()
    // Without the budget: 50 × 4 = 200 attempts. With 20%: at most 50 + 10.
    expect(bad.hits).toBeLessThanOrEqual(60)
    expect(bad.hits).toBeGreaterThanOrEqual(50)
  })

  test('RetryBudgetState: percent of the window, and minRetryRate always allowed', () => {
    const state = new RetryBudgetState()
    const budget = { percent: 50, intervalMs: 1000, minRetryCount: 2, minRetryIntervalMs: 1000 }
    let now = 10_000
    // No requests yet: only minRetryRate.
    expect(state.tryRetry(budget, now)).toBe(true)
    expect(state.tryRetry(budget, now)).toBe(true)
    expect(state.tryRetry(budget, now)).toBe(false)
    for (let i = 0; i < 10; i++) state.request(budget, now)
    // 10 requests, 50% → 5 retries in the window (2 taken).
    let allowed = 0
    for (let i = 0; i < 10; i++) if (state.tryRetry(budget, now)) allowed++
    expect(allowed).toBe(3)
    // The window slides: a second later the old requests and retries are gone.
    now += 1100
    expect(state.tryRetry(budget, now)).toBe(true)
  })
})

describe('consistent hash (Maglev)', () => {
  const members = (ports: number[]) => ports.map((p) => ({ state: new EndpointState(`10.0.0.${p % 250}:${p}`, `10.0.0.${p % 250}`, p), origin: `http://x:${p}` }))

  test('the table is balanced: every member owns M/N entries ± 1', () => {
    for (const n of [2, 3, 7, 10]) {
      const table = maglevTable(Array.from({ length: n }, (_, i) => `10.1.0.${i}:8080`), 65537)
      const counts = new Array(n).fill(0)
      for (const owner of table) counts[owner]++
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1)
    }
  })

  test('measured key distribution: max/min share within 1.15 over 100k keys', () => {
    const ms = members([8080, 8081, 8082, 8083, 8084])
    const picker = new ConsistentHashPicker(ms, 'Header', 'x-user')
    const counts = new Map<number, number>()
    for (let i = 0; i < 100_000; i++) {
      const owner = picker.ownerIndex(`user-${i}`)
      counts.set(owner, (counts.get(owner) ?? 0) + 1)
    }
    const values = [...counts.values()]
    expect(values.length).toBe(5)
    expect(Math.max(...values) / Math.min(...values)).toBeLessThan(1.15)
  })

  test('one of N endpoints leaves: at most 1/N of keys (+2%) move, and only keys of the one that left', () => {
    for (const n of [3, 5, 10]) {
      const ports = Array.from({ length: n }, (_, i) => 9000 + i)
      const before = new ConsistentHashPicker(members(ports), 'Header', 'x-user')
      const leaving = ports[Math.floor(n / 2)]!
      const rest = ports.filter((p) => p !== leaving)
      const after = new ConsistentHashPicker(members(rest), 'Header', 'x-user')
      let moved = 0
      let movedFromStayers = 0
      const keys = 50_000
      for (let i = 0; i < keys; i++) {
        const key = `session-${i}`
        const was = ports[before.ownerIndex(key)]!
        const now = rest[after.ownerIndex(key)]!
        if (was !== now) {
          moved++
          if (was !== leaving) movedFromStayers++
        }
      }
      expect(moved / keys).toBeLessThanOrEqual(1 / n + 0.02)
      // Maglev is not perfectly minimal: a few keys of staying members move too.
      expect(movedFromStayers / keys).toBeLessThan(0.02)
    }
  })

  test('a key whose owner is ejected goes elsewhere, and comes back when it returns', () => {
    const ms = members([7000, 7001, 7002])
    const picker = new ConsistentHashPicker(ms, 'Header', 'x-user')
    const headers = new Headers({ 'x-user': 'alice' })
    const home = picker.pick({ clientIp: '', headers, now: 1 })!
    home.state.ejectedUntil = 100
    const away = picker.pick({ clientIp: '', headers, now: 1 })!
    expect(away).not.toBe(home)
    expect(picker.pick({ clientIp: '', headers, now: 200 })).toBe(home)
  })

  test('Cookie with a ttl: a client without the cookie gets one, and the cookie keeps it on one endpoint', async () => {
    const [a, b, c] = backends('a', 'b', 'c')
    const p: BackendPool = { ...pool('p1', [a!.port, b!.port, c!.port]), policy: { type: 'ConsistentHash', source: 'Cookie', name: 'sticky', cookieTtlSeconds: 3600 } }
    const gw = await gateway([rule()], [p])
    const first = await fetch(`${gw.base}/x`)
    const setCookie = first.headers.get('set-cookie')!
    expect(setCookie).toMatch(/^sticky=[0-9a-f-]+; Max-Age=3600; Path=\/; HttpOnly$/)
    const name = await first.text()
    const cookie = setCookie.split(';')[0]!
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${gw.base}/x`, { headers: { cookie } })
      expect(res.headers.get('set-cookie')).toBeNull()
      expect(await res.text()).toBe(name)
    }
  })

  test('SourceIP and Header over the gateway are sticky', async () => {
    const [a, b, c] = backends('a', 'b', 'c')
    const gw = await gateway(
      [
        rule({ match: { path: { type: 'PathPrefix', value: '/ip' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'ip' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/h' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'h' }, filters: [] }] } }),
      ],
      [
        { ...pool('ip', [a!.port, b!.port, c!.port]), policy: { type: 'ConsistentHash', source: 'ClientIP' } },
        { ...pool('h', [a!.port, b!.port, c!.port]), policy: { type: 'ConsistentHash', source: 'Header', name: 'x-user' } },
      ],
    )
    expect(new Set((await burst(gw.base, 20, undefined, '/ip')).names).size).toBe(1)
    const seen = new Set<string>()
    for (let u = 0; u < 30; u++) {
      const names = new Set<string>()
      for (let i = 0; i < 3; i++) names.add(await (await fetch(`${gw.base}/h`, { headers: { 'x-user': `u${u}` } })).text())
      expect(names.size).toBe(1)
      seen.add([...names][0]!)
    }
    expect(seen.size).toBe(3)
  })
})
