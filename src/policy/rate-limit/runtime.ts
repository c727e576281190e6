/**
 * `rateLimit` runtime (spec.ts), in the ratelimit phase (after client IP detection and
 * authentication, so selectors see the detected client IP and headers copied from credentials).
 *
 *  - local rules: counted synchronously in the process-wide shared table (local-store.ts), so a
 *    rule with only local limits stays on the front's direct path (head-only);
 *  - global rules: one Redis script call per request (global-store.ts), awaited by whichever
 *    path serves the rule (still head-only: the front's direct path awaits the verdict and
 *    forwards the request itself, so each request is counted once); within the deadline (default
 *    50 ms) or the request goes on without them (fail open, counted and logged once per 10 s) or
 *    gets 503 (`failClosed`).
 * Buckets are per route rule (Envoy Gateway's default) or, with `shared`, per policy; their keys
 * hash the policy id, the rule's selectors and unit (a changed limit keeps its count, changed
 * selectors start anew) and the request's distinct values. The counters live outside the
 * compiled chain, so snapshot swaps never reset them.
 *
 * Over any limit: 429 with Retry-After and X-RateLimit-Limit/Remaining/Reset of the rule closest
 * to its limit (responseHeaders: All also puts them on allowed responses, a response hook that
 * takes the rule to the pipeline; None leaves them out).
 */
import type { CompiledPolicy, LocalReply, PolicyRequest, PolicyRuntime, ResponseHeadView, Verdict } from '../runtime.ts'
import { sharedRedis, RedisUnavailable } from '../../shared/redis.ts'
import { logThrottled } from './env.ts'
import { countGlobal, bucketKey } from './global-store.ts'
import { sharedCounters, type SharedCounters } from './local-store.ts'
import { compileSelectors, type Selector } from './selectors.ts'
import { UNIT_SECONDS, type RateLimitRule, type RateLimitSpec, type RateLimitUnit } from './spec.ts'
import { kongError } from '../consumer/identity.ts'

const M_ALLOWED = 2
const M_LIMITED = 3
const M_ERRORS = 4
const M_FAILED_OPEN = 5

interface CompiledRule {
  readonly select: Selector
  readonly requests: number
  readonly unitSeconds: number
  readonly cost: number
  readonly shadow: boolean
  /** Hashes of the bucket key prefix (seeds for the distinct part). */
  readonly a: number
  readonly b: number
  readonly distinct: boolean
  /** Metric slot in the shared table. */
  readonly metric: number
  readonly unit: RateLimitUnit
}

/** Where a request stands against the rule closest to its limit. */
interface Standing {
  limit: number
  remaining: number
  resetAt: number
  /** headerStyle kong: every rule's standing, for the per-unit headers. */
  units?: { unit: RateLimitUnit; limit: number; remaining: number }[]
}

const h32 = (s: string, seed: number) => Bun.hash.murmur32v3(s, seed) | 0 || 1

/** Metric key of a rule: the same on every thread and in the main thread's /metrics (metrics.ts). */
export function metricKey(policyId: string, scope: 'local' | 'global', index: number): readonly [number, number] {
  const s = `${policyId}#${scope}#${index}`
  return [h32(s, 0x6d), h32(s, 0x9e)]
}

function compileRules(rules: readonly RateLimitRule[], policyId: string, bucketScope: string, scope: 'local' | 'global', counters: SharedCounters): CompiledRule[] {
  return rules.map((r, i) => {
    const base = `${scope}\u0000${r.shared ? policyId : bucketScope}\u0000${r.unit}\u0000${JSON.stringify(r.clientSelectors)}`
    const [ma, mb] = metricKey(policyId, scope, i)
    return {
      select: compileSelectors(r.clientSelectors),
      requests: r.requests,
      unitSeconds: UNIT_SECONDS[r.unit],
      cost: r.cost,
      shadow: r.shadowMode,
      a: h32(base, 0x51),
      b: h32(base, 0x7f),
      distinct: JSON.stringify(r.clientSelectors).includes('"Distinct"'),
      metric: counters.metricSlot(ma, mb),
      unit: r.unit,
    }
  })
}

function standingHeaders(s: Standing, nowSec: number): [string, string][] {
  return [
    ['x-ratelimit-limit', String(s.limit)],
    ['x-ratelimit-remaining', String(s.remaining)],
    ['x-ratelimit-reset', String(Math.max(0, s.resetAt - nowSec))],
  ]
}

function limitedReply(s: Standing, nowSec: number, withHeaders: boolean): LocalReply {
  const retryAfter = String(Math.max(1, s.resetAt - nowSec))
  return { status: 429, headers: withHeaders ? [['retry-after', retryAfter], ...standingHeaders(s, nowSec)] : [['retry-after', retryAfter]], body: 'rate limited\n' }
}

/** Kong's rate-limiting headers: per unit, then the RateLimit-* draft headers of the closest rule. */
function kongHeaders(s: Standing, nowSec: number): [string, string][] {
  const out: [string, string][] = []
  for (const u of s.units ?? []) out.push([`x-ratelimit-limit-${u.unit.toLowerCase()}`, String(u.limit)], [`x-ratelimit-remaining-${u.unit.toLowerCase()}`, String(u.remaining)])
  out.push(['ratelimit-limit', String(s.limit)], ['ratelimit-remaining', String(s.remaining)], ['ratelimit-reset', String(Math.max(0, s.resetAt - nowSec))])
  return out
}

const UNAVAILABLE: LocalReply = { status: 503, body: 'rate limit service unavailable\n' }

export const rateLimitRuntime: PolicyRuntime<'rateLimit'> = {
  name: 'rateLimit',
  phase: 'ratelimit',
  order: 0,
  compile(ir, ctx) {
    const spec: RateLimitSpec = ir.spec
    const counters = sharedCounters()
    const bucketScope = `${ir.id}@${ctx.ruleId ?? ''}`
    const local = compileRules(spec.local?.rules ?? [], ir.id, bucketScope, 'local', counters)
    const global = compileRules(spec.global?.rules ?? [], ir.id, bucketScope, 'global', counters)
    const failClosed = spec.global?.failClosed === true
    const timeoutMs = spec.global?.timeoutMs ?? 50
    const headers = spec.responseHeaders
    // Kept across swaps under the policy id (the counters themselves live in shared memory).
    const state = ctx.state.obtain(ir.id, () => ({ globalErrors: 0 }))
    // Standing of allowed requests, for the response hook (responseHeaders: All only).
    const kong = spec.headerStyle === 'kong'
    const standings = headers === 'All' || (kong && headers !== 'None') ? new WeakMap<PolicyRequest, Standing>() : undefined
    const refuse = (req: PolicyRequest, s: Standing, nowSec: number): LocalReply => {
      if (!kong) return limitedReply(s, nowSec, headers !== 'None')
      const retryAfter: [string, string] = ['retry-after', String(Math.max(1, s.resetAt - nowSec))]
      return kongError(req, 429, 'API rate limit exceeded', headers === 'None' ? [retryAfter] : [retryAfter, ...kongHeaders(s, nowSec)])
    }
    /** headerStyle kong: the rule closest to its limit with every rule's standing attached. */
    const withUnits = (s: Standing | undefined, units: Standing['units']): Standing | undefined => (s && units ? { ...s, units } : s)

    const runLocal = (req: PolicyRequest, now: number): Verdict | Standing | undefined => {
      let worst: Standing | undefined
      let over: Standing | undefined
      const units: Standing['units'] = kong ? [] : undefined
      for (let i = 0; i < local.length; i++) {
        const r = local[i]!
        const part = r.select(req)
        if (part === undefined) continue
        const a = r.distinct && part !== '' ? h32(part, r.a) : r.a
        const b = r.distinct && part !== '' ? h32(part, r.b) : r.b
        const hit = counters.hit(a, b, r.unitSeconds, r.cost, now)
        const remaining = Math.max(0, r.requests - hit.count)
        const limited = hit.count > r.requests
        if (units) units.push({ unit: r.unit, limit: r.requests, remaining })
        counters.count(r.metric, limited ? M_LIMITED : M_ALLOWED)
        if (limited && !r.shadow) {
          if (!over || hit.resetAt > over.resetAt) over = { limit: r.requests, remaining: 0, resetAt: hit.resetAt }
        } else if (!worst || remaining < worst.remaining) worst = { limit: r.requests, remaining, resetAt: hit.resetAt }
      }
      if (over) return refuse(req, withUnits(over, units)!, Math.floor(now / 1000))
      return withUnits(worst, units)
    }

    const runGlobal = (req: PolicyRequest, now: number, localStanding: Standing | undefined): Verdict | Promise<Verdict> => {
      const nowSec = Math.floor(now / 1000)
      let keys: string[] | undefined
      let args: string[] | undefined
      let used: CompiledRule[] | undefined
      for (let i = 0; i < global.length; i++) {
        const r = global[i]!
        const part = r.select(req)
        if (part === undefined) continue
        const a = r.distinct && part !== '' ? h32(part, r.a) : r.a
        const b = r.distinct && part !== '' ? h32(part, r.b) : r.b
        ;(keys ??= []).push(bucketKey(a, b, r.unitSeconds, nowSec))
        ;(args ??= []).push(String(r.cost), String(r.unitSeconds + 5))
        ;(used ??= []).push(r)
      }
      if (!keys) return allowed(req, localStanding)
      const conn = sharedRedis()
      const fail = (err: unknown): Verdict => {
        state.globalErrors++
        for (const r of used!) {
          counters.count(r.metric, M_ERRORS)
          if (!failClosed) counters.count(r.metric, M_FAILED_OPEN)
        }
        const reason = err instanceof RedisUnavailable ? err.reason : 'error'
        logThrottled(`ratelimit-redis:${reason}`, 10_000, (log, suppressed) =>
          log.warn(failClosed ? 'global rate limit: redis unavailable, answering 503' : 'global rate limit: redis unavailable, letting requests through', {
            policy: ir.id,
            reason,
            error: (err as Error)?.message,
            redis: conn?.displayUrl ?? 'not configured (--redis-url)',
            suppressedSinceLast: suppressed,
          }),
        )
        return failClosed ? UNAVAILABLE : allowed(req, localStanding)
      }
      if (!conn) return fail(new RedisUnavailable('disconnected', 'no Redis configured (--redis-url)'))
      const usedRules = used!
      return countGlobal(conn, keys, args!, timeoutMs).then((counts) => {
        let worst = localStanding
        let over: Standing | undefined
        const units: Standing['units'] = kong ? [...(localStanding?.units ?? [])] : undefined
        for (let i = 0; i < usedRules.length; i++) {
          const r = usedRules[i]!
          const count = Number(counts[i])
          const resetAt = (Math.floor(nowSec / r.unitSeconds) + 1) * r.unitSeconds
          const limited = count > r.requests
          if (units) units.push({ unit: r.unit, limit: r.requests, remaining: Math.max(0, r.requests - count) })
          counters.count(r.metric, limited ? M_LIMITED : M_ALLOWED)
          if (limited && !r.shadow) {
            if (!over || resetAt > over.resetAt) over = { limit: r.requests, remaining: 0, resetAt }
          } else {
            const remaining = Math.max(0, r.requests - count)
            if (!worst || remaining < worst.remaining) worst = { limit: r.requests, remaining, resetAt }
          }
        }
        if (over) return refuse(req, withUnits(over, units)!, Math.floor(Date.now() / 1000))
        return allowed(req, withUnits(worst, units))
      }, fail)
    }

    const allowed = (req: PolicyRequest, standing: Standing | undefined): Verdict => {
      if (standings && standing) standings.set(req, standing)
      return undefined
    }

    const onRequest = (req: PolicyRequest): Verdict | Promise<Verdict> => {
      const now = Date.now()
      const l = local.length > 0 ? runLocal(req, now) : undefined
      if (l !== undefined && 'status' in l) return l
      if (global.length > 0) return runGlobal(req, now, l)
      return allowed(req, l)
    }

    const policy: CompiledPolicy = {
      headOnly: !standings,
      onRequest,
      ...(standings
        ? {
            onResponseHead(res: ResponseHeadView, req: PolicyRequest) {
              const s = standings.get(req)
              if (!s || res.status === 429) return
              for (const [name, value] of (kong ? kongHeaders : standingHeaders)(s, Math.floor(Date.now() / 1000))) res.headers.set(name, value)
            },
          }
        : {}),
    }
    return policy
  },
}
