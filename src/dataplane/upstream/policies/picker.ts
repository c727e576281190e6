/**
 * One tiny interface, several policies (Caddy's Selector, pingora's BackendSelection).
 * A picker is built once per pool per snapshot; pick() runs per request attempt.
 */
import type { EndpointState } from '../registry.ts'
import type { FieldReader } from '../../http/match.ts'

export interface PoolMember {
  readonly state: EndpointState
  /** "http://10.0.0.1:8080": prefix for the upstream URL, built once. */
  readonly origin: string
}

export interface PickInput {
  readonly clientIp: string
  readonly headers: FieldReader
  readonly now: number
  /** Member used by the previous attempt; a retry prefers another one. */
  readonly avoid?: PoolMember
}

export interface Picker {
  pick(input: PickInput): PoolMember | undefined
}

/**
 * Walk members from `start`, returning the first available one that is not `avoid`.
 * Falls back to `avoid` when it is the only available member, and to any member when all
 * are ejected: passive health must never turn a whole pool into a 503 (panic mode, as Envoy).
 */
export function scanFrom(members: readonly PoolMember[], start: number, input: PickInput): PoolMember | undefined {
  const n = members.length
  if (n === 0) return undefined
  let avoided: PoolMember | undefined
  for (let i = 0; i < n; i++) {
    const member = members[(start + i) % n]!
    if (!member.state.isAvailable(input.now)) continue
    if (member === input.avoid) {
      avoided = member
      continue
    }
    return member
  }
  return avoided ?? members[start % n]
}
