/**
 * Kong's rate-limiting with `policy: redis` on the real thing: a real redis-server and two
 * Portico processes (two replicas) reading the same Kong-style manifests. The count is shared:
 * 5 a minute per consumer across both replicas, whichever one answers; Kong's headers and 429.
 * The plugin's own redis host settings are not used: Portico's --redis-url is the one Redis.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { RedisServer, redisAvailable } from '../support/redis-server.ts'
import { awayFromWindowEdge, ConfigDir, eventually, freePort, get, startPorticoProcess, type PorticoProcess } from '../rate-limit/support.ts'
import { consumers, gateway, KEYS, kongRoute, plugin } from './manifests.ts'

describe.skipIf(!redisAvailable())('rate-limiting policy redis: two replicas, one Redis', () => {
  let redis: RedisServer
  let echo: EchoUpstream
  const replicas: PorticoProcess[] = []
  const dirs: ConfigDir[] = []
  const run = Math.random().toString(36).slice(2, 8)

  beforeAll(async () => {
    redis = await RedisServer.start()
    echo = startEcho('echo')
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      const cfg = new ConfigDir()
      dirs.push(cfg)
      cfg.write('gateway.yaml', gateway(port, echo.port))
      cfg.write('consumers.yaml', consumers())
      cfg.write(
        'plugins.yaml',
        [
          plugin('key-auth', 'key-auth', ''),
          plugin('rate-limit-gold', 'rate-limiting', '  minute: 100\n  policy: local\n'),
          plugin('add-response-header', 'response-transformer', '  add:\n    headers: ["demo: injected-by-kong"]\n'),
          // Kong's docs write the Redis settings on the plugin; Portico counts in its own Redis
          plugin('shared-5', 'rate-limiting', `  minute: 5\n  policy: redis\n  redis:\n    host: redis.kong.svc\n    port: 6379\n`),
          plugin('by-ip-3', 'rate-limiting', `  hour: 3\n  limit_by: ip\n  policy: redis\n  fault_tolerant: false\n`),
        ].join('---\n'),
      )
      cfg.write('routes.yaml', [kongRoute(`api-${run}`, 'key-auth, shared-5'), kongRoute(`ip-${run}`, 'by-ip-3')].join('---\n'))
      const p = await startPorticoProcess(cfg, port, ['--redis-url', redis.url])
      void new Response(p.proc.stderr as ReadableStream).text()
      replicas.push(p)
    }
    // warm up on the key-auth route without a key: answered 401 before any limit counts
    for (const r of replicas) await eventually(async () => (await get(r.base, `/api-${run}/warm`)).status === 401, 10_000, 'route live')
  }, 40_000)

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()))
    await redis.stop()
    await echo.stop()
    for (const d of dirs) d.cleanup()
  }, 30_000)

  test('5 a minute per consumer across both replicas: exactly 5 of 8 pass, with Kong\'s headers; another consumer has its own count', async () => {
    await awayFromWindowEdge(60, 8)
    const results = []
    for (let i = 0; i < 8; i++) results.push(await get(replicas[i % 2]!.base, `/api-${run}`, { apikey: KEYS.sam }))
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
    expect(results.map((r) => r.headers.get('x-ratelimit-remaining-minute'))).toEqual(['4', '3', '2', '1', '0', '0', '0', '0'])
    for (const r of results) expect(r.headers.get('x-ratelimit-limit-minute')).toBe('5')
    const limited = results[5]!
    expect(JSON.parse(limited.body).message).toBe('API rate limit exceeded')
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(Number(limited.headers.get('ratelimit-reset'))).toBeLessThanOrEqual(60)
    // the consumer's own plugin (local, 100) wins over the route's for alex
    const alex = await get(replicas[0]!.base, `/api-${run}`, { apikey: KEYS.alex })
    expect(alex.status).toBe(200)
    expect(alex.headers.get('x-ratelimit-limit-minute')).toBe('100')
  })

  test('limit_by ip, fault_tolerant false: 3 an hour across replicas; Redis down: 503 rather than unlimited', async () => {
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await get(replicas[i % 2]!.base, `/ip-${run}`)).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    await redis.stop()
    const down = await get(replicas[0]!.base, `/ip-${run}`)
    expect(down.status).toBe(503)
    // back on the same port, so the replicas shut down cleanly
    await redis.start()
  })
})
