/**
 * OIDC sessions: sealed (AES-256-GCM) with a key derived from the client secret (HKDF), so every
 * replica configured with the same policy opens the same cookies. Kept in the cookie itself, or
 * in Redis when Portico has one (--redis-url: src/shared/redis.ts), the cookie then holding a
 * random session id only (large tokens never overflow a cookie, replicas share logins, logout
 * ends the session everywhere).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { sharedRedis } from '../../shared/redis.ts'

export interface Session {
  readonly claims: Record<string, unknown>
  readonly accessToken: string
  readonly refreshToken?: string
  readonly idToken?: string
  /** ms */
  readonly expiresAt: number
}

export class Sealer {
  readonly #key: Buffer
  constructor(secret: string, context: string) {
    this.#key = Buffer.from(hkdfSync('sha256', secret, context, 'portico-oidc-session', 32))
  }

  seal(value: unknown): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv)
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')
  }

  open<T>(sealed: string): T | undefined {
    try {
      const raw = Buffer.from(sealed, 'base64url')
      if (raw.length < 29) return undefined
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, 12))
      decipher.setAuthTag(raw.subarray(12, 28))
      return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')) as T
    } catch {
      return undefined
    }
  }
}

const REDIS_TIMEOUT_MS = 500
/** Server-side sessions live this long without use (each refresh extends it). */
const REDIS_TTL_MS = 24 * 3600 * 1000

/** Where sessions are kept; the cookie value is what `save` returns. */
export interface SessionStore {
  readonly kind: 'cookie' | 'redis'
  load(cookie: string): Promise<Session | undefined>
  save(session: Session, previousCookie?: string): Promise<string>
  remove(cookie: string): Promise<void>
}

export function sessionStore(sealer: Sealer, namespace: string): SessionStore {
  const redis = sharedRedis()
  if (!redis) {
    return {
      kind: 'cookie',
      load: async (cookie) => sealer.open<Session>(cookie),
      save: async (session) => {
        const sealed = sealer.seal(session)
        // a cookie holds ~4 KiB: without Redis, drop the ID token (only logout's hint uses it)
        return sealed.length > 3800 ? sealer.seal({ ...session, idToken: undefined }) : sealed
      },
      remove: async () => {},
    }
  }
  const key = (id: string) => `portico:oidc:${namespace}:${id}`
  return {
    kind: 'redis',
    async load(cookie) {
      const id = sealer.open<string>(cookie)
      if (typeof id !== 'string') return undefined
      const value = await redis.call('GET', [key(id)], REDIS_TIMEOUT_MS)
      return typeof value === 'string' ? sealer.open<Session>(value) : undefined
    },
    async save(session, previousCookie) {
      const previous = previousCookie ? sealer.open<string>(previousCookie) : undefined
      const id = typeof previous === 'string' ? previous : randomBytes(32).toString('base64url')
      await redis.call('SET', [key(id), sealer.seal(session), 'PX', String(REDIS_TTL_MS)], REDIS_TIMEOUT_MS)
      return sealer.seal(id)
    },
    async remove(cookie) {
      const id = sealer.open<string>(cookie)
      if (typeof id === 'string') await redis.call('DEL', [key(id)], REDIS_TIMEOUT_MS).catch(() => {})
    },
  }
}
