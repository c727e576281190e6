/**
 * What the authentication runtimes share: reading a credential from a header, cookie or query
 * parameter; the principal (who authenticated, with which claims) handed from authn to authz
 * for one request; a bounded cache; 401 answers that name the scheme and nothing else.
 */
import type { LocalReply, PolicyRequest } from '../runtime.ts'

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (header === null) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** The Cookie header without cookie `name` ("" when nothing is left). */
export function withoutCookie(header: string, name: string): string {
  return header
    .split(';')
    .filter((part) => {
      const eq = part.indexOf('=')
      return (eq < 0 ? part : part.slice(0, eq)).trim() !== name
    })
    .map((p) => p.trim())
    .join('; ')
}

/** The first value of query parameter `name` ("?a=1&b=2"), decoded, or undefined. */
export function queryParam(query: string, name: string): string | undefined {
  if (query.length < 2) return undefined
  for (const pair of query.slice(1).split('&')) {
    const eq = pair.indexOf('=')
    const key = eq < 0 ? pair : pair.slice(0, eq)
    if (safeDecode(key) !== name) continue
    return eq < 0 ? '' : safeDecode(pair.slice(eq + 1))
  }
  return undefined
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s
  }
}

/** Who authenticated on this request (set in the authn phase, read by authorization). */
export interface Principal {
  /** JWT claims per provider name. */
  readonly jwt?: Map<string, Record<string, unknown>>
  /** The consumer a credential belongs to (Kong's consumers; src/policy/consumer). */
  readonly consumer?: ConsumerIdentity
}

/**
 * A consumer as authentication runtimes hand it on: acl reads its groups, rate limits its id,
 * per-consumer features pick their configuration by it. Plain data (it travels in specs).
 */
export interface ConsumerIdentity {
  readonly id: string
  readonly username?: string
  readonly customId?: string
  readonly groups?: readonly string[]
  /** Id of the credential that matched (absent for the anonymous consumer). */
  readonly credentialId?: string
  readonly anonymous?: boolean
}

const principals = new WeakMap<PolicyRequest, { jwt?: Map<string, Record<string, unknown>>; consumer?: ConsumerIdentity }>()

export function setConsumer(req: PolicyRequest, consumer: ConsumerIdentity): void {
  let p = principals.get(req)
  if (!p) principals.set(req, (p = {}))
  p.consumer = consumer
}

export function principalOf(req: PolicyRequest): Principal | undefined {
  return principals.get(req)
}

export function setJwtClaims(req: PolicyRequest, provider: string, claims: Record<string, unknown>): void {
  let p = principals.get(req)
  if (!p) principals.set(req, (p = {}))
  ;(p.jwt ??= new Map()).set(provider, claims)
}

/** A 401 naming the scheme; the body says only that authentication is required. */
export function unauthorized(challenge: string): LocalReply {
  return { status: 401, headers: [['www-authenticate', challenge]], body: 'unauthorized\n' }
}

export const FORBIDDEN: LocalReply = { status: 403, body: 'forbidden\n' }

/**
 * A Map bounded in size: when full, the oldest half is dropped (insertion order). Enough for
 * caches of verified credentials, where a miss only costs one slower verification.
 */
export class BoundedCache<K, V> {
  readonly #map = new Map<K, V>()
  constructor(readonly max: number) {}

  get(key: K): V | undefined {
    return this.#map.get(key)
  }

  set(key: K, value: V): void {
    if (this.#map.size >= this.max) {
      let drop = this.max >> 1
      for (const k of this.#map.keys()) {
        if (drop-- <= 0) break
        this.#map.delete(k)
      }
    }
    this.#map.set(key, value)
  }

  delete(key: K): void {
    this.#map.delete(key)
  }

  get size(): number {
    return this.#map.size
  }
}
