/**
 * Global rate-limit counters in Redis: one script call per request (EVALSHA, all the request's
 * buckets at once), a fixed window per bucket as Envoy's ratelimit service counts: the key
 * carries the window number (Unix seconds / unit), INCRBY the cost, EXPIRE on the first hit of
 * the window (unit + 5 s for clock skew between replicas). Replicas agree on windows through
 * their clocks (keep them NTP-synced).
 */
import { RedisScript, type RedisConnection } from '../../shared/redis.ts'

/** KEYS[i]: a bucket's key; ARGV[2i-1]: its cost, ARGV[2i]: its expiry (s). Returns each count after the increment. */
export const COUNT_SCRIPT = new RedisScript(`local out = {}
for i = 1, #KEYS do
  local cost = tonumber(ARGV[i * 2 - 1])
  local n = redis.call('INCRBY', KEYS[i], cost)
  if n == cost then redis.call('EXPIRE', KEYS[i], ARGV[i * 2]) end
  out[i] = n
end
return out`)

export const KEY_PREFIX = 'portico:rl:'

/** Redis key of a bucket in the window containing `nowSec`. */
export function bucketKey(a: number, b: number, unitSeconds: number, nowSec: number): string {
  return `${KEY_PREFIX}${(a >>> 0).toString(36)}.${(b >>> 0).toString(36)}:${Math.floor(nowSec / unitSeconds)}`
}

export function countGlobal(conn: RedisConnection, keys: string[], args: string[], timeoutMs: number): Promise<number[]> {
  return conn.eval(COUNT_SCRIPT, keys, args, timeoutMs) as Promise<number[]>
}
