/**
 * Global rate limits on the real thing: a real redis-server and two Portico processes, each
 * with --workers 2, reading the same policies (each on its own listener port, as two replicas
 * behind a load balancer). The example: 20 per minute per x-user across both replicas,
 * tiers by header, Redis black-holed (SIGSTOP) and killed mid-run (fail open within the
 * deadline, or 503 with failClosed), Redis back (limits again, no restart).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { RedisServer, redisAvailable } from '../support/redis-server.ts'
import { awayFromWindowEdge, baseManifests, ConfigDir, eventually, freePort, get, httpRoute, rateLimitPolicy, startPorticoProcess, type PorticoProcess } from './support.ts'

const PER_USER = `global:
  rules:
  - clientSelectors:
    - headers: [{name: x-user, type: Distinct}]
    limit: {requests: 20, unit: Minute}
  - clientSelectors:
    - headers: [{name: x-tier, value: gold}]
      sourceCIDR: {type: Distinct, value: 0.0.0.0/0}
    limit: {requests: 1000, unit: Hour}`

const TIERS = `global:
  rules:
  - clientSelectors:
    - headers: [{name: x-tier, value: free}, {name: x-user, type: Distinct}]
    limit: {requests: 3, unit: Hour}
  - clientSelectors:
    - headers: [{name: x-tier, value: gold}, {name: x-user, type: Distinct}]
    limit: {requests: 6, unit: Hour}
responseHeaders: All`

const CLOSED = `global:
  failClosed: true
  rules:
  - clientSelectors:
    - headers: [{name: x-user, type: Distinct}]
    limit: {requests: 1000, unit: Minute}`

describe.skipIf(!redisAvailable())('global rate limit: two processes × two workers, one Redis', () => {
  let redis: RedisServer
  let echo: EchoUpstream
  const replicas: PorticoProcess[] = []
  const dirs: ConfigDir[] = []
  const stderr: string[] = []
  const run = Math.random().toString(36).slice(2, 8)

  beforeAll(async () => {
    redis = await RedisServer.start({ password: 'e2e-redis-Pw9' })
    echo = startEcho('echo')
    const passwordDir = new ConfigDir()
    dirs.push(passwordDir)
    passwordDir.write('redis-password', 'e2e-redis-Pw9\n')
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      const cfg = new ConfigDir()
      dirs.push(cfg)
      cfg.write('base.yaml', baseManifests(port, { echo: echo.port }))
      cfg.write('routes.yaml', [httpRoute('api', '/api', 'echo'), httpRoute('tiers', '/tiers', 'echo'), httpRoute('closed', '/closed', 'echo'), httpRoute('plain', '/plain', 'echo')].join('---\n'))
      cfg.write('policies.yaml', [rateLimitPolicy('per-user', 'api', PER_USER), rateLimitPolicy('tiers', 'tiers', TIERS), rateLimitPolicy('closed', 'closed', CLOSED)].join('---\n'))
      // One replica takes the password from a file, the other from the URL (REDIS_URL).
      const p =
        i === 0
          ? await startPorticoProcess(cfg, port, ['--workers', '2', '--redis-url', redis.url, '--redis-password-file', `${passwordDir.dir}/redis-password`])
          : await startPorticoProcess(cfg, port, ['--workers', '2'], { REDIS_URL: `redis://:e2e-redis-Pw9@127.0.0.1:${redis.port}` })
      replicas.push(p)
      void new Response(p.proc.stderr as ReadableStream).text().then((t) => stderr.push(t))
    }
    // both replicas answer through Redis
    for (const r of replicas) await eventually(async () => (await get(r.base, '/api/warm', { 'x-user': `warm-${run}` })).status === 200, 10_000, 'route live')
  }, 40_000)

  afterAll(async () => {
    redis.resume()
    await Promise.all(replicas.map((r) => r.stop()))
    await redis.stop()
    await echo.stop()
    for (const d of dirs) d.cleanup()
    // the password never reaches the log
    expect(stderr.join('')).not.toContain('e2e-redis-Pw9')
  }, 30_000)

  test('20 per minute per user across both replicas: exactly 20 of 30 pass; another user unaffected', async () => {
    await awayFromWindowEdge(60, 8)
    const user = `alice-${run}`
    const results = []
    // alternate replicas, fresh connections (so both workers of each take some), 3 at a time
    for (let i = 0; i < 30; i += 3) results.push(...(await Promise.all([0, 1, 2].map((j) => get(replicas[(i + j) % 2]!.base, '/api/items', { 'x-user': user })))))
    const ok = results.filter((r) => r.status === 200)
    const limited = results.filter((r) => r.status === 429)
    expect(ok.length).toBe(20)
    expect(limited.length).toBe(10)
    const one = limited[0]!
    expect(one.headers.get('x-ratelimit-limit')).toBe('20')
    expect(one.headers.get('x-ratelimit-remaining')).toBe('0')
    const reset = Number(one.headers.get('x-ratelimit-reset'))
    expect(reset).toBeGreaterThan(0)
    expect(reset).toBeLessThanOrEqual(60)
    expect(Number(one.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    // allowed responses carry no X-RateLimit-* by default (responseHeaders: Limited)
    expect(ok[0]!.headers.get('x-ratelimit-limit')).toBeNull()
    const other = await Promise.all(Array.from({ length: 6 }, (_, i) => get(replicas[i % 2]!.base, '/api/items', { 'x-user': `bob-${run}` })))
    expect(other.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
    // a request without x-user matches no rule: never limited
    expect((await get(replicas[0]!.base, '/api/items')).status).toBe(200)
  }, 30_000)

  test('tiers pick the right limit (free 3, gold 6 per user); headers on allowed responses with responseHeaders: All', async () => {
    const send = (tier: string, user: string) => get(replicas[Math.random() < 0.5 ? 0 : 1]!.base, '/tiers/x', { 'x-tier': tier, 'x-user': `${user}-${run}` })
    const free = []
    for (let i = 0; i < 5; i++) free.push(await send('free', 'carol'))
    expect(free.map((r) => r.status)).toEqual([200, 200, 200, 429, 429])
    expect(free[0]!.headers.get('x-ratelimit-limit')).toBe('3')
    expect(free[0]!.headers.get('x-ratelimit-remaining')).toBe('2')
    const gold = []
    for (let i = 0; i < 8; i++) gold.push(await send('gold', 'dave'))
    expect(gold.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 429, 429])
    expect(gold[5]!.headers.get('x-ratelimit-limit')).toBe('6')
    expect(gold[5]!.headers.get('x-ratelimit-remaining')).toBe('0')
    // no tier header: no rule matches
    expect((await get(replicas[0]!.base, '/tiers/x', { 'x-user': `erin-${run}` })).status).toBe(200)
  }, 30_000)

  test('Redis black-holed (SIGSTOP): no request waits longer than the deadline; fail open, failClosed answers 503; /readyz stays 200', async () => {
    const user = `alice-${run}` // over her limit on /api
    redis.pause()
    try {
      const open = []
      for (let i = 0; i < 16; i++) open.push(await get(replicas[i % 2]!.base, '/api/items', { 'x-user': user }))
      expect(open.every((r) => r.status === 200)).toBe(true)
      const slowest = Math.max(...open.map((r) => r.ms))
      console.log(`black-holed Redis: slowest request ${slowest.toFixed(1)} ms (deadline 50 ms)`)
      expect(slowest).toBeLessThan(50 + 100)
      const closed = []
      for (let i = 0; i < 6; i++) closed.push(await get(replicas[i % 2]!.base, '/closed/x', { 'x-user': user }))
      expect(closed.every((r) => r.status === 503)).toBe(true)
      expect(Math.max(...closed.map((r) => r.ms))).toBeLessThan(150)
      for (const r of replicas) expect((await fetch(`${r.probe}/readyz`)).status).toBe(200)
      // a route without rate limits is untouched
      expect((await get(replicas[0]!.base, '/plain/x')).status).toBe(200)
    } finally {
      redis.resume()
    }
    // Redis answers again: alice is limited again (her count survived in Redis)
    await eventually(async () => (await get(replicas[0]!.base, '/api/items', { 'x-user': user })).status === 429, 5000, 'limits resume after SIGCONT')
  }, 30_000)

  test('Redis killed mid-run: fail open (503 with failClosed), metrics count errors; restarted: limits again without a restart', async () => {
    const user = `frank-${run}`
    await awayFromWindowEdge(60, 12)
    for (let i = 0; i < 5; i++) expect((await get(replicas[i % 2]!.base, '/api/items', { 'x-user': user })).status).toBe(200)
    await redis.kill()
    const during = []
    for (let i = 0; i < 30; i++) during.push(await get(replicas[i % 2]!.base, '/api/items', { 'x-user': user }))
    expect(during.every((r) => r.status === 200)).toBe(true)
    expect(Math.max(...during.map((r) => r.ms))).toBeLessThan(150)
    expect((await get(replicas[1]!.base, '/closed/x', { 'x-user': user })).status).toBe(503)
    const metrics = await (await fetch(`${replicas[0]!.probe}/metrics`)).text()
    const failedOpen = metrics.split('\n').find((l) => l.startsWith('portico_ratelimit_failed_open_total{policy="backendtrafficpolicy/default/per-user#rateLimit",rule="0"}'))
    expect(Number(failedOpen?.split(' ').pop())).toBeGreaterThan(0)
    expect(metrics).toMatch(/portico_ratelimit_requests_total\{policy="backendtrafficpolicy\/default\/per-user#rateLimit",result="allowed",rule="0",scope="global"\} [1-9]/)
    await redis.start()
    const restarted = Date.now()
    // Back: an empty Redis, so grace starts a new count. Requests spread over both replicas and
    // their workers; while a worker is still reconnecting it lets requests through (fail open).
    await awayFromWindowEdge(60, 8)
    const user2 = `grace-${run}`
    const statuses: number[] = []
    let firstLimited = -1
    for (let i = 0; i < 400 && firstLimited < 0; i++) {
      const r = await get(replicas[i % 2]!.base, '/api/items', { 'x-user': user2 })
      statuses.push(r.status)
      if (r.status === 429) firstLimited = i
      else await Bun.sleep(20)
    }
    console.log(`Redis restarted: first 429 after ${Date.now() - restarted} ms, request #${firstLimited + 1}`)
    expect(firstLimited).toBeGreaterThanOrEqual(20)
    // every worker of both replicas counts in Redis again: all limited now
    const after = []
    for (let i = 0; i < 12; i++) after.push((await get(replicas[i % 2]!.base, '/api/items', { 'x-user': user2 })).status)
    expect(after).toEqual(Array(12).fill(429))
  }, 40_000)
})
