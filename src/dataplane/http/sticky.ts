/**
 * Gateway API sessionPersistence on a rule with several weighted backendRefs: the client is
 * pinned to a *variant* (the backendRef it was assigned, by weight, on its first request), not to
 * an endpoint: endpoints inside the variant are still balanced by the pool and may come and go.
 *
 * The cookie (or header) value names the variant by a hash of its backendRef identity (the
 * Service port's pool key, or the Composite's id), not by its position, so it stays valid across
 * config reloads that keep the variant (weights may change, other variants may come and go). A
 * value naming no current variant (the variant was removed, or a forged value) is reassigned by
 * weight and a new value is sent back.
 */
import type { SessionPersistence, WeightedBackend } from '../../ir/types.ts'
import type { RequestState } from './context.ts'
import type { ResponseHook } from './chain.ts'
import { cookieValue } from '../upstream/policies/consistent-hash.ts'

export interface StickyPlan {
  readonly type: 'Cookie' | 'Header'
  /** Cookie name, or header name (lower-case). */
  readonly name: string
  /** Variant id → index into the plan's choices. */
  readonly byId: ReadonlyMap<string, number>
  /** Variant id per choice index. */
  readonly ids: readonly string[]
  readonly absoluteTimeoutMs: number | undefined
  /** "; Path=/; HttpOnly; SameSite=Lax[; Max-Age=n]" */
  readonly cookieAttributes: string
}

/** A backendRef's identity, stable across reloads: what the session value names. */
export function variantKey(backend: WeightedBackend, index: number): string {
  return backend.target?.pool ?? backend.composite?.id ?? `invalid/${index}`
}

export function variantId(key: string): string {
  return Bun.hash(key).toString(36)
}

export function compileSticky(session: SessionPersistence, backends: readonly WeightedBackend[]): StickyPlan {
  const ids = backends.map((b, i) => variantId(variantKey(b, i)))
  const byId = new Map<string, number>()
  // the same Service twice in one rule: one variant (its first choice)
  ids.forEach((id, i) => byId.has(id) || byId.set(id, i))
  const maxAge = session.absoluteTimeoutMs !== undefined ? `; Max-Age=${Math.max(1, Math.floor(session.absoluteTimeoutMs / 1000))}` : ''
  return {
    type: session.type,
    name: session.type === 'Header' ? session.name.toLowerCase() : session.name,
    byId,
    ids,
    absoluteTimeoutMs: session.absoluteTimeoutMs,
    cookieAttributes: `; Path=/; HttpOnly; SameSite=Lax${maxAge}`,
  }
}

/**
 * The pinned choice index from the client's session value, or undefined (no value, expired,
 * or a variant no longer in the rule). The value is "<variant id>.<issued, seconds base 36>".
 */
export function pinnedIndex(plan: StickyPlan, state: RequestState, nowMs: number): number | undefined {
  const raw = plan.type === 'Cookie' ? cookieValue(state.headers.get('cookie'), plan.name) : state.headers.get(plan.name) ?? undefined
  if (!raw) return undefined
  const dot = raw.indexOf('.')
  const id = dot < 0 ? raw : raw.slice(0, dot)
  const index = plan.byId.get(id)
  if (index === undefined) return undefined
  if (plan.absoluteTimeoutMs !== undefined) {
    const issued = dot < 0 ? NaN : parseInt(raw.slice(dot + 1), 36) * 1000
    if (!(nowMs - issued < plan.absoluteTimeoutMs)) return undefined
  }
  return index
}

/** The response hook that hands the client its new session value. */
export function assignHook(plan: StickyPlan, index: number, nowMs: number): ResponseHook {
  const value = `${plan.ids[index]}.${Math.floor(nowMs / 1000).toString(36)}`
  if (plan.type === 'Header') return (_req, headers) => headers.set(plan.name, value)
  const cookie = `${plan.name}=${value}${plan.cookieAttributes}`
  return (_req, headers) => headers.append('set-cookie', cookie)
}
