import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { closedPort, startDataplane, type Running } from './harness.ts'
import { pool, rule, simple } from './ir.ts'
import type { BackendPool } from '../../src/ir/types.ts'

/** Answers 503 for the first `failures` requests, then echoes. */
function flaky(failures: number) {
  let seen = 0
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: () => (++seen <= failures ? new Response('busy', { status: 503 }) : new Response('ok after retries')),
  })
  return { port: server.port!, seen: () => seen, stop: () => server.stop(true) }
}

describe('retries', () => {
  let gw: Running
  const flakyOnce = flaky(2)
  const flakyForever = flaky(1_000_000)
  let healthy: EchoUpstream
  let deadPort: number

  beforeAll(async () => {
    healthy = startEcho('healthy')
    deadPort = await closedPort()
    const retry = { codes: [503], attempts: 2, backoffMs: 10 }
    gw = await startDataplane(
      simple(0, [
        rule({ match: { path: { type: 'PathPrefix', value: '/flaky' } }, retry, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'flaky' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/forever' } }, retry, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'forever' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/conn' } }, retry, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'mixed' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/noretry' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'forever' }, filters: [] }] } }),
      ], [pool('flaky', [flakyOnce.port]), pool('forever', [flakyForever.port]), pool('mixed', [deadPort, healthy.port])]),
    )
  })

  afterAll(async () => {
    await gw.stop()
    await flakyOnce.stop()
    await flakyForever.stop()
    await healthy.stop()
  })

  test('503 then success within the retry budget', async () => {
    const res = await fetch(`${gw.base}/flaky`)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('ok after retries')
    expect(flakyOnce.seen()).toBe(3)
  })

  test('gives up after attempts and relays the last response', async () => {
    const before = flakyForever.seen()
    expect((await fetch(`${gw.base}/forever`)).status).toBe(503)
    expect(flakyForever.seen() - before).toBe(3)
  })

  test('no retry policy: one attempt', async () => {
    const before = flakyForever.seen()
    expect((await fetch(`${gw.base}/noretry`)).status).toBe(503)
    expect(flakyForever.seen() - before).toBe(1)
  })

  test('connection errors are retried on another endpoint', async () => {
    for (let i = 0; i < 6; i++) expect((await fetch(`${gw.base}/conn`)).status).toBe(200)
  })

  test('a streamed upload (unknown length) is not retried', async () => {
    const before = flakyForever.seen()
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('x'.repeat(1000)))
        c.close()
      },
    })
    const res = await fetch(`${gw.base}/forever`, { method: 'POST', body, duplex: 'half' } as RequestInit)
    expect(res.status).toBe(503)
    expect(flakyForever.seen() - before).toBe(1)
  })
})

describe('weights and policies', () => {
  let a: EchoUpstream
  let b: EchoUpstream
  let c: EchoUpstream
  let gw: Running

  beforeAll(async () => {
    a = startEcho('a')
    b = startEcho('b')
    c = startEcho('c')
    const pools: BackendPool[] = [
      pool('a', [a.port]),
      pool('b', [b.port]),
      pool('c', [c.port]),
      pool('rr', [a.port, b.port, c.port]),
      pool('hash', [a.port, b.port, c.port], { type: 'ConsistentHash', source: 'Header', name: 'x-user' }),
      pool('least', [a.port, b.port], { type: 'LeastRequest' }),
    ]
    gw = await startDataplane(
      simple(0, [
        rule({ match: { path: { type: 'PathPrefix', value: '/weighted' } }, action: { kind: 'forward', backends: [
          { weight: 80, target: { pool: 'a' }, filters: [] },
          { weight: 20, target: { pool: 'b' }, filters: [] },
          { weight: 0, target: { pool: 'c' }, filters: [] },
        ] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/zero' } }, action: { kind: 'forward', backends: [{ weight: 0, target: { pool: 'a' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/rr' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'rr' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/hash' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'hash' }, filters: [] }] } }),
        rule({ match: { path: { type: 'PathPrefix', value: '/least' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'least' }, filters: [] }] } }),
      ], pools),
    )
  })

  afterAll(async () => {
    await gw.stop()
    await Promise.all([a.stop(), b.stop(), c.stop()])
  })

  const nameOf = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.base}${path}`, { headers })
    const body = (await res.json()) as { name: string }
    return body.name
  }

  test('weighted split roughly follows weights; zero weight never chosen', async () => {
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 }
    for (let i = 0; i < 400; i++) counts[await nameOf('/weighted')]!++
    expect(counts.c).toBe(0)
    // 80/20 of 400: expect a ≈ 320. Bounds are ~6 standard deviations wide.
    expect(counts.a!).toBeGreaterThan(270)
    expect(counts.a!).toBeLessThan(370)
    expect(counts.b!).toBeGreaterThan(30)
  })

  test('all weights zero → 500', async () => {
    expect((await fetch(`${gw.base}/zero`)).status).toBe(500)
  })

  test('round robin visits every endpoint evenly', async () => {
    const counts: Record<string, number> = {}
    for (let i = 0; i < 30; i++) {
      const name = await nameOf('/rr')
      counts[name] = (counts[name] ?? 0) + 1
    }
    expect(counts).toEqual({ a: 10, b: 10, c: 10 })
  })

  test('consistent hash on a header is sticky per key', async () => {
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const first = await nameOf('/hash', { 'x-user': user })
      for (let i = 0; i < 5; i++) expect(await nameOf('/hash', { 'x-user': user })).toBe(first)
    }
    const spread = new Set<string>()
    for (let i = 0; i < 40; i++) spread.add(await nameOf('/hash', { 'x-user': `user-${i}` }))
    expect(spread.size).toBeGreaterThan(1)
  })

  test('least request avoids the endpoint with a slow request in flight', async () => {
    const slow = fetch(`${gw.base}/least?delay=500`)
    await Bun.sleep(50)
    const busy = a.requests.at(-1)?.path === '/least?delay=500' ? 'a' : 'b'
    for (let i = 0; i < 5; i++) expect(await nameOf('/least')).not.toBe(busy)
    await (await slow).body?.cancel()
  })
})

describe('passive health', () => {
  test('an endpoint that keeps refusing connections is ejected', async () => {
    const healthy = startEcho('ok')
    const dead = await closedPort()
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [dead, healthy.port])]))
    try {
      const statuses: number[] = []
      for (let i = 0; i < 20; i++) statuses.push((await fetch(`${gw.base}/x`)).status)
      // Round robin sends every other request to the dead endpoint until it is ejected
      // after 5 failures; after that every request succeeds.
      expect(statuses.slice(-8).every((s) => s === 200)).toBe(true)
      expect(gw.dp.registry.list().find((e) => e.port === dead)!.ejectedUntil).toBeGreaterThan(Date.now())
    } finally {
      await gw.stop()
      await healthy.stop()
    }
  })
})

describe('backend request timeout', () => {
  test('per-attempt timeout → 504', async () => {
    const echo = startEcho('slow')
    const gw = await startDataplane(simple(0, [rule({ timeouts: { backendRequestMs: 200 } })], [pool('p1', [echo.port])]))
    try {
      expect((await fetch(`${gw.base}/x?delay=1500`)).status).toBe(504)
      expect((await fetch(`${gw.base}/x?delay=10`)).status).toBe(200)
    } finally {
      await gw.stop()
      await echo.stop()
    }
  })
})


describe('consistent hash ring', () => {
  test('similar keys spread across members', async () => {
    const { ConsistentHashPicker } = await import('../../src/dataplane/upstream/policies/consistent-hash.ts')
    const { EndpointState } = await import('../../src/dataplane/upstream/registry.ts')
    const members = [8080, 8081, 8082].map((p) => ({ state: new EndpointState(`127.0.0.1:${p}`, '127.0.0.1', p), origin: `http://127.0.0.1:${p}` }))
    const picker = new ConsistentHashPicker(members, 'Header', 'x-user')
    const counts = new Map<string, number>()
    for (let i = 0; i < 300; i++) {
      const member = picker.pick({ clientIp: '', headers: new Headers({ 'x-user': `user-${i}` }), now: 0 })!
      counts.set(member.origin, (counts.get(member.origin) ?? 0) + 1)
    }
    expect(counts.size).toBe(3)
    for (const n of counts.values()) expect(n).toBeGreaterThan(50)
  })
})

describe('retry accounting with pooled connections', () => {
  test('the backend never sees more than 1 + attempts requests, even when fetch re-sends on a reused connection', async () => {
    const http = await import('node:http')
    let failing = 0
    const server = http.createServer((req, res) => {
      if (req.url === '/warm') return res.end('warm')
      failing++
      req.socket.resetAndDestroy()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const backendPort = (server.address() as { port: number }).port
    const gw = await startDataplane(simple(0, [rule({ retry: { codes: [], attempts: 2, backoffMs: 0 } })], [pool('p1', [backendPort])]))
    try {
      expect(await (await fetch(`${gw.base}/warm`)).text()).toBe('warm')
      expect((await fetch(`${gw.base}/fail`)).status).toBe(503)
      expect(failing).toBeGreaterThanOrEqual(2)
      expect(failing).toBeLessThanOrEqual(3)
    } finally {
      await gw.stop()
      server.close()
    }
  })
})
