/**
 * Portico's Redis client: one connection per thread (the main thread and each data-plane
 * worker), shared by every feature that needs Redis (global rate limits, OIDC sessions).
 *
 * Built on Bun's built-in `RedisClient` (RESP over one TCP or TLS connection, commands
 * pipelined automatically, reconnects by itself). What this module adds:
 *  - a deadline on every call (`timeoutMs`): a slow or black-holed Redis never holds a request
 *    longer than that; the call rejects with RedisUnavailable;
 *  - fail fast while Redis is down: with Bun's offline queue off, a disconnected client rejects
 *    at once; after repeated timeouts (a Redis that accepts but never answers, e.g. SIGSTOPped)
 *    calls are refused for a moment and one probe at a time goes through, so traffic does not
 *    pay the deadline on every request; a bound on calls in flight;
 *  - reconnects forever (a new client when Bun's gives up), so Redis coming back needs no restart;
 *  - scripts by SHA (EVALSHA, loading the script again on NOSCRIPT);
 *  - the URL for logs with its password redacted (`redactRedisUrl`): log nothing else of it.
 *
 * Interface, in short:
 *   configureRedis(settings)            once per thread (app.ts, worker.ts), before use
 *   sharedRedis()                       that thread's RedisConnection, or undefined when no URL
 *   conn.call('GET', [key], 50)         any command with a deadline
 *   conn.eval(script, keys, args, 50)   a RedisScript by SHA
 *   conn.state                          'connected' | 'connecting' | 'unavailable'
 * Every failure is a RedisUnavailable (its `reason` says which): callers decide fail open or closed.
 */
import { RedisClient } from 'bun'
import { readFileSync } from 'node:fs'

export interface RedisSettings {
  /** redis://[user[:password]@]host[:port][/db] or rediss:// (TLS). */
  readonly url: string
  /** Overrides a password in the URL (from --redis-password-file or a Secret). */
  readonly password?: string
  /** Connect timeout, ms (default 2000). */
  readonly connectTimeoutMs?: number
  /** Consecutive timeouts after which calls are refused for a moment (default 3). */
  readonly tripAfter?: number
  /** Most calls in flight; beyond it calls are refused at once (default 10000). */
  readonly maxInFlight?: number
}

export type RedisFailure = 'timeout' | 'disconnected' | 'tripped' | 'overloaded' | 'error'

export class RedisUnavailable extends Error {
  constructor(
    readonly reason: RedisFailure,
    message: string,
  ) {
    super(message)
    this.name = 'RedisUnavailable'
  }
}

/** A Lua script run by SHA (EVALSHA), loaded again when Redis answers NOSCRIPT (a restart, SCRIPT FLUSH). */
export class RedisScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = new Bun.CryptoHasher('sha1').update(source).digest('hex')
  }
}

/** The URL with any password replaced by "***" (what logs may show). */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(invalid redis url)'
  }
}

/** Checks a Redis URL (scheme, host); the problem as a sentence, or undefined. */
export function redisUrlProblem(url: string): string | undefined {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'is not a URL'
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return 'must start with redis:// or rediss://'
  if (!u.hostname) return 'has no host'
  return undefined
}

/** Settings from the command line: the URL and, when given, a password file (its content, trimmed). */
export function redisSettingsFrom(url: string, passwordFile?: string): RedisSettings {
  if (!passwordFile) return { url }
  const password = readFileSync(passwordFile, 'utf8').trim()
  if (password === '') throw new Error(`the Redis password file ${passwordFile} is empty`)
  return { url, password }
}

function connectUrl(settings: RedisSettings): string {
  if (settings.password === undefined) return settings.url
  const u = new URL(settings.url)
  u.password = encodeURIComponent(settings.password)
  return u.toString()
}

interface Logger {
  warn(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
}

export class RedisConnection {
  readonly #url: string
  readonly #settings: RedisSettings
  readonly #logger: Logger | undefined
  #client: RedisClient
  #connecting: Promise<void> | undefined
  #lastConnectAttempt = 0
  #closed = false
  #inFlight = 0
  #timeouts = 0
  /** While > now, calls are refused except one probe at a time. */
  #trippedUntil = 0
  #tripMs = 250
  #probing = false
  #loaded = new Set<string>()
  /** Failures by reason since start (metrics). */
  readonly failures: Record<RedisFailure, number> = { timeout: 0, disconnected: 0, tripped: 0, overloaded: 0, error: 0 }

  constructor(settings: RedisSettings, logger?: Logger) {
    this.#settings = settings
    this.#url = connectUrl(settings)
    this.#logger = logger
    this.#client = this.#newClient()
    this.#connect()
  }

  /** The URL with its password redacted. */
  get displayUrl(): string {
    return redactRedisUrl(this.#settings.url)
  }

  get state(): 'connected' | 'connecting' | 'unavailable' {
    if (this.#client.connected && this.#trippedUntil <= Date.now()) return 'connected'
    return this.#connecting ? 'connecting' : 'unavailable'
  }

  /** Any command, answered within `timeoutMs` or rejected with RedisUnavailable. */
  call(command: string, args: string[], timeoutMs = 50): Promise<any> {
    const refused = this.#admit()
    if (refused) return Promise.reject(refused)
    return this.#send(command, args, timeoutMs)
  }

  /** Runs a script by SHA; NOSCRIPT loads it (EVAL) in the same deadline. */
  eval(script: RedisScript, keys: readonly string[], args: readonly string[], timeoutMs = 50): Promise<any> {
    const refused = this.#admit()
    if (refused) return Promise.reject(refused)
    const argv = [String(keys.length), ...keys, ...args]
    if (!this.#loaded.has(script.sha)) {
      // First use on this connection (or after NOSCRIPT): EVAL caches it server-side.
      return this.#send('EVAL', [script.source, ...argv], timeoutMs).then((r) => {
        this.#loaded.add(script.sha)
        return r
      })
    }
    const started = Date.now()
    return this.#send('EVALSHA', [script.sha, ...argv], timeoutMs).catch((err) => {
      if (!(err instanceof NoScript)) throw err
      this.#loaded.delete(script.sha)
      const left = timeoutMs - (Date.now() - started)
      if (left <= 0) throw new RedisUnavailable('timeout', `redis did not answer within ${timeoutMs} ms`)
      return this.eval(script, keys, args, left)
    })
  }

  close(): void {
    this.#closed = true
    this.#client.close()
  }

  #newClient(): RedisClient {
    const client = new RedisClient(this.#url, {
      connectionTimeout: this.#settings.connectTimeoutMs ?? 2000,
      autoReconnect: true,
      maxRetries: 1_000_000,
      // Disconnected: reject at once instead of queueing (traffic must not wait for Redis).
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      ...(this.#settings.url.startsWith('rediss:') ? { tls: true } : {}),
    })
    client.onconnect = () => {
      this.#timeouts = 0
      this.#trippedUntil = 0
      this.#tripMs = 250
      this.#loaded.clear()
      this.#logger?.info('redis connected', { url: this.displayUrl })
    }
    client.onclose = (err) => {
      this.#loaded.clear()
      if (this.#closed) return
      this.#logger?.warn('redis connection closed', { url: this.displayUrl, error: err?.message })
      // Bun gave up reconnecting (or never started): try again ourselves, with a fresh client.
      setTimeout(() => {
        if (this.#closed || this.#client !== client || client.connected) return
        this.#client = this.#newClient()
        this.#connect()
      }, 200).unref?.()
    }
    return client
  }

  #connect(): void {
    if (this.#connecting || this.#closed) return
    this.#lastConnectAttempt = Date.now()
    const client = this.#client
    this.#connecting = client
      .connect()
      .catch(() => {})
      .finally(() => {
        this.#connecting = undefined
      })
  }

  #admit(): RedisUnavailable | undefined {
    if (!this.#client.connected) {
      // Bun reconnects on its own once connected before; before that (Redis down at start) we do.
      if (!this.#connecting && Date.now() - this.#lastConnectAttempt > 200) this.#connect()
      this.failures.disconnected++
      return new RedisUnavailable('disconnected', 'redis is not connected')
    }
    if (this.#inFlight >= (this.#settings.maxInFlight ?? 10_000)) {
      this.failures.overloaded++
      return new RedisUnavailable('overloaded', 'too many redis calls in flight')
    }
    if (this.#trippedUntil !== 0) {
      // Tripped: refuse until the pause is over, then let one call at a time find out whether
      // Redis answers again (its success closes the trip, its timeout extends it).
      if (this.#trippedUntil > Date.now() || this.#probing) {
        this.failures.tripped++
        return new RedisUnavailable('tripped', 'redis timed out repeatedly; calls refused for a moment')
      }
      this.#probing = true
    }
    return undefined
  }

  #send(command: string, args: string[], timeoutMs: number): Promise<any> {
    this.#inFlight++
    const probe = this.#probing
    return new Promise((resolve, reject) => {
      let done = false
      const timer = setTimeout(() => {
        if (done) return
        done = true
        this.#inFlight--
        this.failures.timeout++
        if (probe) this.#probing = false
        if (++this.#timeouts >= (this.#settings.tripAfter ?? 3)) {
          this.#trippedUntil = Date.now() + this.#tripMs
          this.#tripMs = Math.min(this.#tripMs * 2, 2000)
        }
        reject(new RedisUnavailable('timeout', `redis did not answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#client.send(command, args).then(
        (value) => {
          if (done) return
          done = true
          clearTimeout(timer)
          this.#inFlight--
          this.#timeouts = 0
          if (probe) {
            this.#probing = false
            this.#trippedUntil = 0
            this.#tripMs = 250
          }
          resolve(value)
        },
        (err: Error & { code?: string }) => {
          if (done) return
          done = true
          clearTimeout(timer)
          this.#inFlight--
          if (probe) this.#probing = false
          if (err.code === 'ERR_REDIS_SERVER_ERROR' && err.message.startsWith('NOSCRIPT')) return reject(new NoScript())
          const reason: RedisFailure = err.code === 'ERR_REDIS_SERVER_ERROR' ? 'error' : 'disconnected'
          this.failures[reason]++
          reject(new RedisUnavailable(reason, `redis: ${err.message}`))
        },
      )
    })
  }
}

class NoScript extends Error {}

// ---------------------------------------------------------------- one connection per thread

let settings: RedisSettings | undefined
let connection: RedisConnection | undefined
let logger: Logger | undefined

/** Sets this thread's Redis (undefined: none). A later call with other settings replaces the connection. */
export function configureRedis(next: RedisSettings | undefined, log?: Logger): void {
  if (log) logger = log
  if (next?.url === settings?.url && next?.password === settings?.password) return
  connection?.close()
  connection = undefined
  settings = next
}

/** The thread's settings (handed to worker threads at start). */
export function redisSettings(): RedisSettings | undefined {
  return settings
}

/** This thread's connection, opened on first use; undefined when no Redis is configured. */
export function sharedRedis(): RedisConnection | undefined {
  if (!settings) return undefined
  return (connection ??= new RedisConnection(settings, logger))
}
