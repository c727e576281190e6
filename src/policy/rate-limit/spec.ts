/**
 * BackendTrafficPolicy `rateLimit` (Envoy Gateway's api/v1alpha1/ratelimit_types.go): how often
 * a client may call a route. The IR form, plain data; translate.ts builds it from the policy.
 *
 *  - local:  counted in this process (every worker thread shares the counters: SharedArrayBuffer)
 *  - global: counted in Redis, shared by every replica (--redis-url)
 * A request is counted by every rule whose selectors all match; over any limit → 429.
 */

export type RateLimitUnit = 'Second' | 'Minute' | 'Hour' | 'Day' | 'Month' | 'Year'

/** Window length in seconds; Month and Year as Envoy's ratelimit service counts them (30 and 365 days). */
export const UNIT_SECONDS: Record<RateLimitUnit, number> = { Second: 1, Minute: 60, Hour: 3600, Day: 86_400, Month: 2_592_000, Year: 31_536_000 }

/** Match on a request field (header by name, or query parameter by name: a Portico extension). */
export interface ValueSelector {
  /** Header names lower-case; query parameter names as written. */
  readonly name: string
  /** Distinct: one bucket per distinct value (a request without the field does not match the rule). */
  readonly type: 'Exact' | 'RegularExpression' | 'Distinct'
  readonly value?: string
  /** Exact / RegularExpression only: match when the value does NOT match (or the field is absent). */
  readonly invert: boolean
}

export interface MethodSelector {
  readonly value: string
  readonly invert: boolean
}

export interface PathSelector {
  readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression'
  readonly value: string
  readonly invert: boolean
}

export interface SourceCidrSelector {
  /** Exact: every address in the range shares one bucket; Distinct: one bucket per address. */
  readonly type: 'Exact' | 'Distinct'
  readonly value: string
}

/** All conditions must hold (headers AND-ed, methods OR-ed). */
export interface ClientSelector {
  readonly headers?: readonly ValueSelector[]
  readonly queryParams?: readonly ValueSelector[]
  readonly methods?: readonly MethodSelector[]
  readonly path?: PathSelector
  readonly sourceCIDR?: SourceCidrSelector
  /**
   * Portico extension (Kong's `limit_by`): one bucket per authenticated consumer (Consumer), per
   * credential (Credential) or per client IP (ClientIP, any address family); a request without
   * a consumer or credential is counted by its client IP, as Kong does.
   */
  readonly identity?: 'Consumer' | 'Credential' | 'ClientIP'
}

export interface RateLimitRule {
  /** Every selector must match; none: all traffic of the route. */
  readonly clientSelectors: readonly ClientSelector[]
  readonly requests: number
  readonly unit: RateLimitUnit
  /** What a request takes from the counter (cost.request.number; default 1; 0 checks without counting). */
  readonly cost: number
  /** One bucket across every route the policy reaches (default: one per route rule). */
  readonly shared: boolean
  /** Counted and reported, never enforced. */
  readonly shadowMode: boolean
}

export interface RateLimitSpec {
  readonly local?: { readonly rules: readonly RateLimitRule[] }
  readonly global?: {
    readonly rules: readonly RateLimitRule[]
    /** Portico extension: answer 503 when Redis cannot be asked in time (default: let the request through). */
    readonly failClosed: boolean
    /** Portico extension: the per-request deadline for Redis, ms (default 50). */
    readonly timeoutMs: number
  }
  /**
   * Portico extension: where the X-RateLimit-* headers go. Limited (default): on 429 answers;
   * All: also on allowed responses (needs a response hook: a rule with a local limit then
   * leaves the front's direct path); None: never (429 still carries Retry-After).
   */
  readonly responseHeaders: 'Limited' | 'All' | 'None'
  /**
   * Portico extension: Kong's rate-limiting headers and answers instead: X-RateLimit-Limit-<Unit>
   * and X-RateLimit-Remaining-<Unit> per rule, RateLimit-Limit/Remaining/Reset of the rule
   * closest to its limit (on every response unless responseHeaders is None), and 429
   * `{"message": "API rate limit exceeded"}`.
   */
  readonly headerStyle?: 'kong'
}

export const DEFAULT_GLOBAL_TIMEOUT_MS = 50

declare module '../kind.ts' {
  interface PolicySpecs {
    rateLimit: RateLimitSpec
  }
}
