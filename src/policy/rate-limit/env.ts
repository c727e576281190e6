/**
 * What rate limiting needs from its thread, installed once per thread before snapshots arrive:
 * the process-wide counters (local-store.ts; the main thread's buffer, handed to every worker),
 * the Redis settings (src/shared/redis.ts) and a logger for Redis trouble.
 *
 *   main thread: installRateLimitEnv({ counters: sharedCounters().buffer, redis, logger })
 *   each worker: installRateLimitEnv(init.rateLimit, logger)   (src/worker.ts)
 */
import { configureRedis, sharedRedis, type RedisSettings } from '../../shared/redis.ts'
import type { Logger } from '../../telemetry/logger.ts'
import { useSharedCounters } from './local-store.ts'

export interface RateLimitEnv {
  readonly counters: SharedArrayBuffer
  readonly redis?: RedisSettings
}

let logger: Logger | undefined

export function installRateLimitEnv(env: RateLimitEnv | undefined, log: Logger): void {
  logger = log
  if (!env) return
  useSharedCounters(env.counters)
  configureRedis(env.redis, log)
  // Connect now, not on the first limited request (which would otherwise fail open).
  if (env.redis) sharedRedis()
}

export function rateLimitLogger(): Logger | undefined {
  return logger
}

/** A log line at most once per interval per key (Redis trouble under load must not flood the log). */
const lastLogged = new Map<string, number>()
export function logThrottled(key: string, intervalMs: number, line: (l: Logger, suppressed: number) => void): void {
  const now = Date.now()
  const entry = lastLogged.get(key)
  if (entry !== undefined && now - entry < intervalMs) {
    suppressed.set(key, (suppressed.get(key) ?? 0) + 1)
    return
  }
  lastLogged.set(key, now)
  const n = suppressed.get(key) ?? 0
  suppressed.delete(key)
  if (logger) line(logger, n)
}
const suppressed = new Map<string, number>()
