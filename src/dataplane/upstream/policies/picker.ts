/**
 * One tiny interface, several policies (Caddy's Selector, pingora's BackendSelection).
 * A picker is built once per pool per snapshot; pick() runs per request attempt.
 */
import type { EndpointState, HealthCell } from '../registry.ts'
import type { FieldReader } from '../../http/match.ts'

export interface PoolMember {
  readonly state: EndpointState
  /** "http://10.0.0.1:8080": prefix for the upstream URL, built once. */
  readonly origin: string
  /** Active health of this endpoint under the pool's check (absent: the pool has no active check). */
  readonly health?: HealthCell
}

export interface PickInput {
  readonly clientIp: string
  readonly headers: FieldReader
  readonly now: number
  /** Member used by the previous attempt; a retry prefers another one. */
  readonly avoid?: PoolMember
  /** Members earlier attempts of this request used (refused connects): never picked again while another is left. */
  readonly tried?: ReadonlySet<PoolMember>
  /** ConsistentHash Cookie: the generated key of a request that carried no cookie (pool.ts newCookie). */
  readonly hashKey?: string
}

export interface Picker {
  pick(input: PickInput): PoolMember | undefined
}

/** Not passively ejected and not failing its active check. */
export function usable(member: PoolMember, now: number): boolean {
  return member.state.ejectedUntil <= now && (member.health === undefined || member.health.healthy)
}

/**
 * Walk members from `start`, returning the first usable one that is not `avoid` (nor tried).
 * Falls back to `avoid` when it is the only usable member, and to any untried member when all
 * are ejected or unhealthy: health must never turn a whole pool into a 503 (panic mode, as Envoy).
 */
export function scanFrom(members: readonly PoolMember[], start: number, input: PickInput): PoolMember | undefined {
  const n = members.length
  if (n === 0) return undefined
  const tried = input.tried
  let avoided: PoolMember | undefined
  let fallback: PoolMember | undefined
  for (let i = 0; i < n; i++) {
    const member = members[(start + i) % n]!
    if (tried !== undefined && tried.has(member)) continue
    fallback ??= member
    if (!usable(member, input.now)) continue
    if (member === input.avoid) {
      avoided = member
      continue
    }
    return member
  }
  return avoided ?? fallback ?? (tried === undefined ? members[start % n] : undefined)
}
