/**
 * src/shared/redis.ts against a real redis-server: commands and scripts by SHA (NOSCRIPT after a
 * restart), deadlines while Redis is black-holed (SIGSTOP), fail fast while it is down, back
 * without a restart, password from settings, and a URL that is never shown with its password.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RedisConnection, RedisScript, RedisUnavailable, redactRedisUrl, redisUrlProblem } from '../../src/shared/redis.ts'
import { RedisServer, redisAvailable } from '../support/redis-server.ts'

const INCR = new RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check().catch(() => false)) return
    await Bun.sleep(25)
  }
  throw new Error('condition not met in time')
}

describe.skipIf(!redisAvailable())('shared Redis connection', () => {
  let redis: RedisServer
  let conn: RedisConnection

  beforeAll(async () => {
    redis = await RedisServer.start()
    conn = new RedisConnection({ url: redis.url })
    await until(async () => (await conn.call('PING', [], 500)) === 'PONG')
  })
  afterAll(async () => {
    conn.close()
    await redis.stop()
  })

  test('commands and scripts', async () => {
    expect(await conn.call('SET', ['a', '1'])).toBe('OK')
    expect(await conn.call('GET', ['a'])).toBe('1')
    expect(await conn.eval(INCR, ['n'], ['2'])).toBe(2)
    expect(await conn.eval(INCR, ['n'], ['3'])).toBe(5)
  })

  test('black-holed Redis: every call ends by its deadline, then calls are refused at once; answers again after SIGCONT', async () => {
    redis.pause()
    try {
      const started = Date.now()
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => conn.call('PING', [], 50)))
      const took = Date.now() - started
      expect(results.every((r) => r.status === 'rejected' && r.reason instanceof RedisUnavailable)).toBe(true)
      expect(took).toBeLessThan(150)
      // after several timeouts: tripped, refused without waiting
      const t0 = Date.now()
      const again = await Promise.allSettled([conn.call('PING', [], 50), conn.call('PING', [], 50)])
      expect(again.every((r) => r.status === 'rejected')).toBe(true)
      expect(Date.now() - t0).toBeLessThan(80)
    } finally {
      redis.resume()
    }
    await until(async () => (await conn.call('PING', [], 200)) === 'PONG')
  })

  test('Redis killed: fail fast; restarted: back without a new connection object, scripts reloaded', async () => {
    await redis.kill()
    const t0 = Date.now()
    const err = await conn.call('PING', [], 50).catch((e) => e)
    expect(err).toBeInstanceOf(RedisUnavailable)
    expect(Date.now() - t0).toBeLessThan(60)
    await redis.start()
    await until(async () => (await conn.call('PING', [], 200)) === 'PONG')
    // the new server has no scripts cached: NOSCRIPT is handled
    expect(await conn.eval(INCR, ['m'], ['1'], 200)).toBe(1)
  })

  test('password from settings; the URL is never shown with it', async () => {
    const locked = await RedisServer.start({ password: 's3cr3t-pw' })
    try {
      const c = new RedisConnection({ url: locked.url, password: 's3cr3t-pw' })
      await until(async () => (await c.call('PING', [], 500)) === 'PONG')
      expect(c.displayUrl).not.toContain('s3cr3t')
      c.close()
      const wrong = new RedisConnection({ url: `redis://:bad@127.0.0.1:${locked.port}` })
      const e = await wrong.call('PING', [], 300).catch((x) => x)
      expect(e).toBeInstanceOf(RedisUnavailable)
      wrong.close()
    } finally {
      await locked.stop()
    }
    expect(redactRedisUrl('redis://user:hunter2@h:6379/0')).toBe('redis://user:***@h:6379/0')
    expect(redactRedisUrl('rediss://:hunter2@h')).not.toContain('hunter2')
    expect(redisUrlProblem('http://x')).toBeDefined()
    expect(redisUrlProblem('rediss://h:6380')).toBeUndefined()
  })
})
