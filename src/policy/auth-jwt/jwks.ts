/**
 * Key sets for the JWT runtime. A remote JWKS is fetched off the request path: at compile, then
 * again in the background once `cacheDuration` has passed (started by a request, which goes on
 * with the keys it has), and at once (at most every few seconds) when a token names a key id
 * the set does not hold (key rotation). A failed fetch keeps the previous keys. Translation never
 * fetches anything.
 */
import { createHash } from 'node:crypto'
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose'

const FETCH_TIMEOUT_MS = 5_000
/** Fastest refetch for an unknown key id (a flood of made-up kids must not become a flood of fetches). */
const MIN_REFRESH_MS = 5_000

export interface KeySet {
  /** undefined until keys are known. */
  readonly getKey: JWTVerifyGetKey | undefined
  /** Changes whenever the keys do (verified tokens are checked again then). */
  readonly version: string
  has(kid: string | undefined): boolean
  /** Resolves once a fetch (started now, or running) ended; immediately for local sets. */
  refresh(force: boolean): Promise<void>
  /** Called per request: starts a background refresh when the cache duration ran out. */
  touch(now: number): void
}

export function parseJwks(text: string): JSONWebKeySet | string {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return 'is not JSON'
  }
  if (!v || typeof v !== 'object' || !Array.isArray((v as { keys?: unknown }).keys)) return 'is not a JWK set ({"keys": [...]})'
  for (const k of (v as { keys: unknown[] }).keys) {
    if (!k || typeof k !== 'object' || typeof (k as { kty?: unknown }).kty !== 'string') return 'holds a key without kty'
    if ((k as { kty: string }).kty === 'oct') return 'holds a symmetric (oct) key: only public keys are accepted'
    if ('d' in (k as object)) return 'holds a private key: publish public keys only'
  }
  return v as JSONWebKeySet
}

function kidsOf(set: JSONWebKeySet): Set<string | undefined> {
  return new Set(set.keys.map((k) => (typeof k.kid === 'string' ? k.kid : undefined)))
}

export function localKeySet(set: JSONWebKeySet): KeySet {
  const getKey = createLocalJWKSet(set)
  const kids = kidsOf(set)
  return {
    getKey,
    version: createHash('sha256').update(JSON.stringify(set)).digest('base64'),
    has: (kid) => kid === undefined || kids.has(kid),
    refresh: () => Promise.resolve(),
    touch: () => {},
  }
}

export class RemoteKeySet implements KeySet {
  getKey: JWTVerifyGetKey | undefined
  #generation = 0
  #kids = new Set<string | undefined>()
  #text = ''
  #fetchedAt = 0
  #lastAttempt = 0
  #inflight: Promise<void> | undefined

  constructor(
    readonly uri: string,
    readonly cacheDurationMs: number,
  ) {}

  get version(): string {
    return `${this.uri}#${this.#generation}`
  }

  has(kid: string | undefined): boolean {
    return kid === undefined ? this.#kids.size > 0 : this.#kids.has(kid)
  }

  touch(now: number): void {
    if (now - this.#fetchedAt >= this.cacheDurationMs && now - this.#lastAttempt >= MIN_REFRESH_MS) void this.refresh(false)
  }

  refresh(force: boolean): Promise<void> {
    if (this.#inflight) return this.#inflight
    const now = Date.now()
    if (!force && this.getKey && now - this.#lastAttempt < MIN_REFRESH_MS) return Promise.resolve()
    if (force && now - this.#lastAttempt < MIN_REFRESH_MS) return Promise.resolve()
    this.#lastAttempt = now
    this.#inflight = this.#fetch().finally(() => (this.#inflight = undefined))
    return this.#inflight
  }

  async #fetch(): Promise<void> {
    try {
      const res = await fetch(this.uri, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } })
      if (!res.ok) return
      const text = await res.text()
      this.#fetchedAt = Date.now()
      if (text === this.#text) return
      const set = parseJwks(text)
      if (typeof set === 'string') return
      this.getKey = createLocalJWKSet(set)
      this.#kids = kidsOf(set)
      this.#text = text
      this.#generation++
    } catch {
      // keep the keys we have; the next request after MIN_REFRESH_MS tries again
    }
  }
}
