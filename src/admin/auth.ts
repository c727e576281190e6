/**
 * Who may read the config views. On loopback (the default) anyone on the machine may; a wider
 * bind needs a bearer token, from a file or from a Secret. Probes and /metrics never need one.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import type { K8sObject } from '../store/kinds.ts'

export const TOKEN_REALM = 'portico-admin'

/** Where the admin token comes from; `token()` is undefined while it is not available (fail closed). */
export interface AdminAuth {
  token(): string | undefined
  /** For messages: "file /path" or "Secret ns/name". */
  readonly source: string
}

const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

/** An address a socket can bind to: an IPv4 or IPv6 literal, or `localhost`. */
export function isBindAddress(address: string): boolean {
  return address === 'localhost' || isIP(address) !== 0
}

/** 127.0.0.0/8, ::1 (any spelling, IPv4-mapped included) or `localhost`. */
export function isLoopbackAddress(address: string): boolean {
  if (address === 'localhost') return true
  const family = isIP(address)
  return family !== 0 && loopback.check(address, family === 6 ? 'ipv6' : 'ipv4')
}

/** Constant-time comparison: both sides are hashed first, so lengths leak nothing either. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | null): string | undefined {
  const m = header?.match(/^\s*Bearer\s+(\S+)\s*$/i)
  return m?.[1]
}

/** The admin token held by a Secret: data key `token` (base64) or stringData `token`, trimmed. */
export function tokenFromSecret(secret: K8sObject | undefined): string | undefined {
  if (!secret) return undefined
  const plain = secret.stringData?.token
  const raw = typeof plain === 'string' ? plain : typeof secret.data?.token === 'string' ? Buffer.from(secret.data.token, 'base64').toString('utf8') : undefined
  const token = raw?.trim()
  return token ? token : undefined
}

/**
 * The answer for a request to a config view when a token is configured: undefined lets it
 * through; otherwise 401 (missing or wrong token) or 503 (the token is not available yet).
 */
export function checkAdminToken(auth: AdminAuth, request: Request): Response | undefined {
  const expected = auth.token()
  if (expected === undefined)
    return Response.json({ error: `admin token not available yet (${auth.source}); config views are closed until it is` }, { status: 503 })
  const presented = bearerToken(request.headers.get('authorization'))
  if (presented !== undefined && tokenMatches(presented, expected)) return undefined
  return Response.json({ error: 'unauthorized: send Authorization: Bearer <admin token>' }, { status: 401, headers: { 'www-authenticate': `Bearer realm="${TOKEN_REALM}"` } })
}
