/**
 * IR → Plan, and the holder the hot path reads.
 *
 * compile() does every bit of work that does not depend on the request: matchers and RegExps,
 * filter closures, weighted-choice tables, pools with their pickers. The result is immutable;
 * publishing it is one reference assignment, and each request reads `active.current` once and
 * uses only that plan, so an in-flight request finishes on the plan it started with.
 */
import type { BackendPool, ForwardAction, HttpFilter, HttpListener, HttpPort, HttpRetry, HttpRule, RedirectAction, Snapshot, WeightedBackend } from '../ir/types.ts'
import type { PolicyIr } from '../policy/kind.ts'
import type { CompileContext, PolicyStateView } from '../policy/runtime.ts'
import { PortRouter, RuleMatcher, type MatchableRule } from './http/match.ts'
import { compileChain, filterFeatures, mergePolicies, ruleFeatures, type Chain, type RequestHook, type ResponseHook } from './http/chain.ts'
import { backendSettings, variantIr, type BackendSettings } from './upstream/variants.ts'
import type { RequestBufferSpec } from '../policy/request-buffer/spec.ts'
import { compileRedirect } from './http/filters/redirect.ts'
import { PolicyStateRegistry } from './policy-state.ts'
import type { RequestState } from './http/context.ts'
import { buildPool, type RuntimePool } from './upstream/pool.ts'
import { usesHttp1Client } from './http/http1-forward.ts'
import { dnsNamesOf, withinListener } from './http/tls/sni-names.ts'
import { endpointKey, type EndpointRegistry } from './upstream/registry.ts'
import { compileComposite, compositePoolKeys, type CompositePlan } from './composite/plan.ts'
import { compileSticky, type StickyPlan } from './http/sticky.ts'

export interface Plan {
  readonly revision: number
  readonly ir: Snapshot
  /** Keyed by the IR (Gateway listener) port. */
  readonly ports: ReadonlyMap<number, PortPlan>
  readonly pools: ReadonlyMap<string, RuntimePool>
  /** Policy state (kept across swaps, keyed by policy id): the same object for every plan of one registry. */
  readonly policyState: PolicyStateRegistry
}

export interface TlsEntry {
  readonly cert: string
  readonly key: string
  readonly serverName?: string
  /** Frontend client-certificate validation (mTLS): CA bundle clients must chain to. */
  readonly ca?: string
  readonly requestCert?: boolean
  /** false for AllowInsecureFallback: ask for a certificate but accept any (or none). */
  readonly rejectUnauthorized?: boolean
}

export interface PortPlan {
  readonly ir: HttpPort
  readonly port: number
  readonly scheme: 'http' | 'https'
  readonly router: PortRouter<RoutePlan>
  /** Certificates for Bun.serve, default (no SNI name) first; undefined for plain HTTP. */
  readonly tls: readonly TlsEntry[] | undefined
  /** Changes iff the certificates change: the server restarts only then (Bun cannot reload certs). */
  readonly tlsFingerprint: string
  /** Some rule of the port has a requestBuffer policy (the front then matches a body's head before holding it). */
  readonly hasRequestBuffer: boolean
  /**
   * Some rule is a GRPCRoute's or forwards to an h2c backend: h2 clients of this port go to the
   * h2 server (dataplane/http2), which relays gRPC trailers. Other ports' h2 clients are served by
   * the inner Bun.serve, whose h2 costs about 2.5x less CPU per request (bench/https.ts).
   */
  readonly servesGrpc: boolean
}

export interface RoutePlan extends MatchableRule {
  readonly id: string
  readonly ir: HttpRule
  /** Listener policies, rule policies and the rule's filters, compiled and sorted (http/chain.ts). */
  readonly chain: Chain
  /** The chain's request hooks, in run order. */
  readonly requestFilters: readonly RequestHook[]
  /** The chain's response-head hooks (pipeline only). */
  readonly responseFilters: readonly ResponseHook[]
  readonly action: ActionPlan
  readonly requestTimeoutMs: number | undefined
  readonly backendTimeoutMs: number | undefined
  /** The route set `timeouts.request: 0s`: no deadline at all, not even the data plane's default. */
  readonly timeoutDisabled: boolean
  readonly retry: RetryPlan | undefined
  /**
   * Forwarding the HTTP front can do on its own (http/front): a head-only chain (no filters;
   * head-only policies such as requestID run on the front), no retry, no backend filters, and
   * every backend a plain HTTP/1.1 pool. Decided per rule, never per backend, so the weighted
   * draw is the same whichever path serves the request.
   */
  readonly direct: boolean
  /** The same for WebSocket upgrades, which plain HTTP and kubernetes.io/ws pools both accept. */
  readonly directWebSocket: boolean
  /** Every policy id (state key) of the rule's and its backends' chains. */
  readonly policyIds: readonly string[]
  /** Keys of the pool variants its backends use (BackendTrafficPolicy settings; upstream/variants.ts). */
  readonly variantKeys: readonly string[]
  /** BackendTrafficPolicy requestBuffer.limit: bodies are received whole before going upstream, larger ones get 413. */
  readonly requestBufferBytes: number | undefined
}

export interface RetryPlan {
  readonly codes: ReadonlySet<number>
  readonly attempts: number
  readonly backoffMs: number
  /** Cap on backoffMs × attempt (Infinity: none). */
  readonly maxBackoffMs: number
  readonly perTryTimeoutMs: number | undefined
  /** Whether a response with this status is retried. */
  retryStatus(status: number): boolean
  /** Whether a failed attempt (no response head) is retried. */
  retryFailure(failure: 'refused' | 'reset' | 'timeout'): boolean
}

export type ActionPlan = ForwardPlan | { readonly kind: 'redirect'; readonly respond: (state: RequestState) => Response } | RespondPlan

export interface RespondPlan {
  readonly kind: 'respond'
  readonly status: number
  readonly body: string | undefined
}

export interface ForwardPlan {
  readonly kind: 'forward'
  readonly choices: readonly BackendChoice[]
  /** Running sums of weights, for one random draw per request. */
  readonly cumulative: readonly number[]
  readonly totalWeight: number
  /** sessionPersistence with several backendRefs: the client is pinned to its variant (http/sticky.ts). */
  readonly sticky?: StickyPlan
}

export interface BackendChoice {
  readonly weight: number
  /** Undefined when the backendRef is invalid or its pool is missing: such a choice answers 500. */
  readonly pool: RuntimePool | undefined
  readonly invalid: string | undefined
  /** The backendRef's own filters. */
  readonly chain: Chain
  readonly requestFilters: readonly RequestHook[]
  readonly responseFilters: readonly ResponseHook[]
  /** A Composite backendRef (src/dataplane/composite): served by calling its members; `pool` is undefined. */
  readonly composite?: CompositePlan
}

export function compile(ir: Snapshot, registry: EndpointRegistry): Plan {
  const memo = memoFor(registry)
  const pools = new Map<string, RuntimePool>()
  const liveEndpoints = new Set<string>()
  for (const [key, pool] of Object.entries(ir.pools)) {
    pools.set(key, runtimePool(pool, registry, memo))
    for (const ep of pool.endpoints) liveEndpoints.add(endpointKey(ep.address, ep.port))
  }
  if (!samePools(memo.lastPools, pools)) memo.poolsEpoch++
  memo.lastPools = pools
  const ports = new Map<number, PortPlan>()
  const livePlans: RoutePlan[] = []
  const livePools = new Set<string>(pools.keys())
  const variant: VariantOf = (base, settings) => variantPool(base, settings, registry, memo)
  for (const port of ir.http) ports.set(port.port, compilePort(port, pools, memo, livePlans, livePools, variant))
  // Only once the plan compiled (a throw above keeps the old plan and its endpoints). Endpoints
  // still used by an in-flight request on the old plan keep their object; the index forgets them.
  registry.retain(liveEndpoints, livePools)
  retainStates(memo.policyState, livePlans)
  for (const key of memo.usesOne.keys()) if (!pools.has(key)) memo.usesOne.delete(key) // no gone pool is held
  return { revision: ir.revision, ir, ports, pools, policyState: memo.policyState }
}

/**
 * Forgets the policy states no live rule names. Only the few ids that hold a state are looked
 * for, and the walk stops once all are found: with a policy on each of 10,000 rules, collecting
 * every rule's ids into a set cost more than the rest of a new route's compile.
 */
function retainStates(state: PolicyStateRegistry, plans: readonly RoutePlan[]): void {
  if (state.size === 0) return
  const unseen = new Set(state.ids())
  for (const plan of plans) {
    for (const id of plan.policyIds) unseen.delete(id)
    if (unseen.size === 0) return
  }
  state.forget(unseen)
}

/**
 * What compile() can reuse from earlier compiles for one registry. The translator hands every
 * rebuild the same IR objects (pools, rules) for what did not change, so at thousands of routes a
 * new route recompiles one rule, not all of them.
 *
 * - A RuntimePool is reused for the identical IR pool while the registry still maps each of its
 *   endpoints to the EndpointState it holds (an endpoint that left the plan was forgotten by
 *   retain() and comes back as a new state object, so such a pool is rebuilt).
 * - A RoutePlan is reused for the identical IR rule while every pool it looked up at compile time
 *   is still the plan's pool for that key (compileChoice and RequestMirror capture RuntimePools;
 *   nothing else in a RoutePlan depends on the snapshot). It is then shared by every listener
 *   and virtual host holding that rule, which is fine: RoutePlans are immutable.
 * Keyed by registry because RuntimePools bind its endpoint states; weak so entries go with
 * their IR objects.
 */
interface CompileMemo {
  readonly pools: WeakMap<BackendPool, RuntimePool>
  /** Per rule, per listener policies (their JSON; "" for none): a rule's chain includes its listener's policies. */
  readonly rules: WeakMap<HttpRule, RuleMemo>
  /** Policy state lives as long as the registry: kept across swaps, pruned to the live plan's ids. */
  readonly policyState: PolicyStateRegistry
  /** Pool variants per shared runtime pool and settings id (rebuilt with their base pool). */
  readonly variants: WeakMap<RuntimePool, Map<string, RuntimePool>>
  /**
   * Changes when a compile's pools differ from the previous one's (a key added or dropped, or
   * bound to another RuntimePool). A rule memo checked in the same pools epoch and policy-state
   * epoch is reused without looking at its pools and states again: a new route among 10,000
   * then costs a lookup per unchanged rule, not a walk over each one's dependencies.
   */
  poolsEpoch: number
  lastPools: ReadonlyMap<string, RuntimePool> | undefined
  /** See usesOne(). */
  readonly usesOne: Map<string, RuleMemo['uses']>
}

function samePools(a: ReadonlyMap<string, RuntimePool> | undefined, b: ReadonlyMap<string, RuntimePool>): boolean {
  if (!a || a.size !== b.size) return false
  for (const [key, pool] of b) if (a.get(key) !== pool) return false
  return true
}

type VariantOf = (base: RuntimePool, settings: BackendSettings) => RuntimePool

function variantPool(base: RuntimePool, settings: BackendSettings, registry: EndpointRegistry, memo: CompileMemo): RuntimePool {
  let byId = memo.variants.get(base)
  if (!byId) memo.variants.set(base, (byId = new Map()))
  let pool = byId.get(settings.id)
  if (!pool) byId.set(settings.id, (pool = buildPool(variantIr(base.ir, settings), registry)))
  return pool
}

/**
 * One compiled rule for one listener-policy key. A rule under several keys (listeners with
 * different policies) chains them through `next`: almost every rule has one, and a Map per rule
 * would cost more memory than the plan it points to.
 */
interface RuleMemo {
  readonly listenerKey: string
  next: RuleMemo | undefined
  plan: RoutePlan
  uses: readonly (readonly [string, RuntimePool | undefined])[]
  /** The policy state objects the chain bound at compile time (reused only while they are still the live ones). */
  states: readonly (readonly [string, object])[]
  /** The epochs (CompileMemo.poolsEpoch, PolicyStateRegistry.epoch) in which `uses` and `states` were last found current. */
  poolsEpoch: number
  statesEpoch: number
}

/** The empty list every rule without policies or pools shares (a plan holds thousands of rules). */
const NONE: readonly never[] = Object.freeze([])

const memos = new WeakMap<EndpointRegistry, CompileMemo>()

function memoFor(registry: EndpointRegistry): CompileMemo {
  let memo = memos.get(registry)
  if (!memo) memos.set(registry, (memo = { pools: new WeakMap(), rules: new WeakMap(), policyState: new PolicyStateRegistry(), variants: new WeakMap(), poolsEpoch: 0, lastPools: undefined, usesOne: new Map() }))
  return memo
}

function runtimePool(ir: BackendPool, registry: EndpointRegistry, memo: CompileMemo): RuntimePool {
  const cached = memo.pools.get(ir)
  if (cached && ir.endpoints.every((ep, i) => cached.members[i]?.state === registry.endpoint(ep.address, ep.port))) return cached
  const pool = buildPool(ir, registry)
  memo.pools.set(ir, pool)
  return pool
}

function compilePort(port: HttpPort, pools: ReadonlyMap<string, RuntimePool>, memo: CompileMemo, livePlans: RoutePlan[], livePools: Set<string>, variant: VariantOf): PortPlan {
  const tls = port.protocol === 'HTTPS' ? tlsEntries(port.listeners) : undefined
  const listenerKeys = new Map<HttpListener, string>()
  const keyOf = (listener: HttpListener) => {
    let key = listenerKeys.get(listener)
    if (key === undefined) listenerKeys.set(listener, (key = listener.policies && listener.policies.length > 0 ? JSON.stringify(listener.policies) : ''))
    return key
  }
  let hasRequestBuffer = false
  let servesGrpc = false
  const router = new PortRouter(port.listeners, (rule, listener) => {
    const plan = memoizedRule(rule, listener.policies, keyOf(listener), pools, memo, variant)
    if (plan.policyIds.length > 0) livePlans.push(plan)
    for (const key of plan.variantKeys) livePools.add(key)
    if (plan.requestBufferBytes !== undefined) hasRequestBuffer = true
    if (!servesGrpc && (rule.owner.kind === 'GRPCRoute' || (plan.action.kind === 'forward' && plan.action.choices.some((c) => c.pool?.ir.protocol === 'h2c')))) servesGrpc = true
    return plan
  })
  return {
    ir: port,
    port: port.port,
    scheme: port.protocol === 'HTTPS' ? 'https' : 'http',
    router,
    tls,
    tlsFingerprint: tls ? Bun.hash(JSON.stringify(tls)).toString(36) : '',
    hasRequestBuffer,
    servesGrpc,
  }
}

function memoizedRule(rule: HttpRule, listenerPolicies: readonly PolicyIr[] | undefined, listenerKey: string, pools: ReadonlyMap<string, RuntimePool>, memo: CompileMemo, variant: VariantOf): RoutePlan {
  const first = memo.rules.get(rule)
  let cached = first
  while (cached && cached.listenerKey !== listenerKey) cached = cached.next
  const state = memo.policyState
  if (cached) {
    if (cached.poolsEpoch === memo.poolsEpoch && cached.statesEpoch === state.epoch) return cached.plan
    if (usesCurrent(cached, pools, state)) {
      cached.poolsEpoch = memo.poolsEpoch
      cached.statesEpoch = state.epoch
      return cached.plan
    }
  }
  // The states the chain binds, so that a reuse can check they are still the live ones.
  const states: (readonly [string, object])[] = []
  const tracking: PolicyStateView = {
    obtain: (id, create) => {
      const obj = state.obtain(id, create)
      states.push([id, obj])
      return obj
    },
  }
  const plan = compileRule(rule, listenerPolicies, pools, tracking, variant)
  const keys = poolKeysOf(rule, listenerPolicies)
  const entry: RuleMemo = {
    listenerKey,
    next: undefined,
    plan,
    uses: keys.length === 0 ? NONE : keys.length === 1 ? usesOne(memo, keys[0]!, pools.get(keys[0]!)) : keys.map((key) => [key, pools.get(key)] as const),
    states: states.length === 0 ? NONE : states,
    poolsEpoch: memo.poolsEpoch,
    statesEpoch: state.epoch,
  }
  if (cached) {
    // the same key, stale: updated in place (it stays in its chain)
    cached.plan = entry.plan
    cached.uses = entry.uses
    cached.states = entry.states
    cached.poolsEpoch = entry.poolsEpoch
    cached.statesEpoch = entry.statesEpoch
  } else if (first) (entry.next = first.next), (first.next = entry)
  else memo.rules.set(rule, entry)
  return plan
}

/** The `uses` of a rule that looked up one pool: one list per pool key and RuntimePool, shared by every such rule. */
function usesOne(memo: CompileMemo, key: string, pool: RuntimePool | undefined): RuleMemo['uses'] {
  const held = memo.usesOne.get(key)
  if (held && held[0]![1] === pool) return held
  const uses = [[key, pool] as const]
  memo.usesOne.set(key, uses)
  return uses
}

/** Whether every pool and policy state a memoized rule bound is still the live one. */
function usesCurrent(cached: RuleMemo, pools: ReadonlyMap<string, RuntimePool>, state: PolicyStateRegistry): boolean {
  for (const [key, pool] of cached.uses) if (pools.get(key) !== pool) return false
  for (const [id, obj] of cached.states) if (state.peek(id) !== obj) return false
  return true
}

/** Every pool key compileRule looks up for this rule: backend targets, RequestMirror filters (rule and backend level), and the pools policies call. */
function poolKeysOf(rule: HttpRule, listenerPolicies: readonly PolicyIr[] | undefined): string[] {
  const keys: string[] = []
  for (const policies of [listenerPolicies, rule.policies]) for (const p of policies ?? []) if (p.pools) keys.push(...p.pools)
  const mirrors = (filters: readonly HttpFilter[]) => {
    for (const f of filters) if (f.type === 'RequestMirror') keys.push(f.backend.pool)
    else if (f.type === 'ExternalAuth') keys.push(f.pool)
  }
  mirrors(rule.filters)
  if (rule.action.kind === 'forward')
    for (const b of rule.action.backends) {
      if (b.target) keys.push(b.target.pool)
      if (b.composite) keys.push(...compositePoolKeys(b.composite))
      mirrors(b.filters)
    }
  return keys
}

function tlsEntries(listeners: readonly HttpListener[]): TlsEntry[] {
  const named: TlsEntry[] = []
  let fallback: TlsEntry | undefined
  for (const listener of listeners) {
    const certificates = listener.tls?.certificates ?? []
    if (certificates.length === 0) continue
    const validation = listener.tls?.clientValidation
    const entryOf = (cert: { certPem: string; keyPem: string }): TlsEntry => ({
      cert: cert.certPem,
      key: cert.keyPem,
      ...(validation ? { ca: validation.caPem, requestCert: true, rejectUnauthorized: validation.mode === 'AllowValidOnly' } : {}),
    })
    const hostname = listener.hostname && listener.hostname !== '*' ? listener.hostname : undefined
    // The listener's own name goes to the certificate that covers it (else the first); with
    // several certificates, each also answers for the names it carries within the listener.
    const primary = (hostname && certificates.find((c) => dnsNamesOf(c.certPem).some((n) => n === hostname || withinListener(hostname, n)))) || certificates[0]!
    if (hostname) named.push({ ...entryOf(primary), serverName: hostname })
    else fallback ??= entryOf(primary)
    if (certificates.length > 1)
      for (const cert of certificates)
        for (const name of dnsNamesOf(cert.certPem))
          if (name !== hostname && withinListener(name, hostname)) named.push({ ...entryOf(cert), serverName: name })
  }
  // Bun serves the first entry to clients with no or unknown SNI.
  return fallback ? [fallback, ...named] : named
}

function compileRule(rule: HttpRule, listenerPolicies: readonly PolicyIr[] | undefined, pools: ReadonlyMap<string, RuntimePool>, state: PolicyStateView, variant: VariantOf): RoutePlan {
  const matcher = new RuleMatcher(rule.match)
  const ctx: CompileContext = { prefix: matcher.prefix, pools, state, ruleId: rule.id }
  const chain = compileChain(ruleFeatures(rule, listenerPolicies), ctx)
  // BackendTrafficPolicy features: the rule's backends go through pool variants with them.
  const settings = rule.policies?.length || listenerPolicies?.length ? backendSettings(mergePolicies(listenerPolicies, rule.policies)) : undefined
  const action = compileAction(rule, ctx, settings?.pool ? (base) => variant(base, settings) : undefined)
  const headOnly = chain.direct
  // An HTTPRoute rule's own retry (GEP-1731) wins over a BackendTrafficPolicy's.
  const ruleRetry = rule.retry ?? settings?.retry
  const buffer = rule.policies?.length || listenerPolicies?.length ? mergePolicies(listenerPolicies, rule.policies).find((p) => p.name === 'requestBuffer') : undefined
  const retry = ruleRetry && ruleRetry.attempts > 0 ? retryPlan(ruleRetry) : undefined
  return {
    id: rule.id,
    ir: rule,
    matcher,
    chain,
    requestFilters: chain.request,
    responseFilters: chain.response,
    policyIds: action.kind === 'forward' && action.choices.some((c) => c.chain.ids.length > 0) ? [...chain.ids, ...action.choices.flatMap((c) => c.chain.ids)] : chain.ids,
    variantKeys: settings?.pool && action.kind === 'forward' ? action.choices.flatMap((c) => (c.pool ? [c.pool.key] : [])) : NONE,
    requestBufferBytes: buffer ? (buffer.spec as RequestBufferSpec).limitBytes : undefined,
    action,
    requestTimeoutMs: positive(rule.timeouts?.requestMs),
    backendTimeoutMs: positive(rule.timeouts?.backendRequestMs),
    timeoutDisabled: rule.timeouts?.requestMs === 0,
    retry,
    // a sticky variant choice reads and sets the session cookie: the pipeline's job (handler.ts)
    direct: headOnly && retry === undefined && !sticky(action) && isDirectAction(action, (pool) => usesHttp1Client(pool) && pool.cookie === undefined),
    directWebSocket: headOnly && !sticky(action) && isDirectAction(action, (pool) => (pool.ir.protocol === 'http' || pool.ir.protocol === 'ws') && pool.tls === undefined),
  }
}

/**
 * HTTPRoute retry (GEP-1731): its codes, and every connection error. BackendTrafficPolicy
 * `retryOn.triggers` (Envoy's retry_on): 5xx (any 5xx and any failure), gateway-error
 * (502/503/504 and any failure), reset (reset or per-try timeout), connect-failure,
 * retriable-4xx (409), refused-stream (h2c: a reset), retriable-status-codes (`codes`).
 */
export function retryPlan(retry: HttpRetry): RetryPlan {
  const codes = new Set(retry.codes)
  const triggers = retry.triggers
  let failures: ReadonlySet<string> = ALL_FAILURES
  if (triggers) {
    const statuses = new Set<number>()
    const f = new Set<string>()
    for (const t of triggers) {
      if (t === '5xx') for (let s = 500; s < 600; s++) statuses.add(s)
      if (t === 'gateway-error') for (const s of [502, 503, 504]) statuses.add(s)
      if (t === 'retriable-4xx') statuses.add(409)
      if (t === 'retriable-status-codes') for (const s of codes) statuses.add(s)
      if (t === '5xx' || t === 'gateway-error') for (const x of ALL_FAILURES) f.add(x)
      if (t === 'reset') (f.add('reset'), f.add('timeout'))
      if (t === 'refused-stream') f.add('reset')
      if (t === 'connect-failure') f.add('refused')
    }
    codes.clear()
    for (const s of statuses) codes.add(s)
    failures = f
  }
  return {
    codes,
    attempts: retry.attempts,
    backoffMs: retry.backoffMs,
    maxBackoffMs: retry.maxBackoffMs ?? Infinity,
    perTryTimeoutMs: positive(retry.perTryTimeoutMs),
    retryStatus: (status) => codes.has(status),
    retryFailure: (failure) => failures.has(failure),
  }
}

const ALL_FAILURES: ReadonlySet<string> = new Set(['refused', 'reset', 'timeout'])

function sticky(action: ActionPlan): boolean {
  return action.kind === 'forward' && action.sticky !== undefined
}

function isDirectAction(action: ActionPlan, poolOk: (pool: RuntimePool) => boolean): boolean {
  if (action.kind !== 'forward' || action.totalWeight <= 0) return false
  return action.choices.every((c) => c.pool !== undefined && poolOk(c.pool) && c.chain.entries.length === 0)
}

function compileAction(rule: HttpRule, ctx: CompileContext, variant?: (base: RuntimePool) => RuntimePool): ActionPlan {
  const action = rule.action
  const prefix = ctx.prefix
  switch (action.kind) {
    case 'respond':
      return { kind: 'respond', status: action.status, body: action.body }
    case 'redirect':
      return { kind: 'redirect', respond: compileRedirect(action as RedirectAction, prefix) }
    case 'forward': {
      // Backends without filters, composites, variants or stickiness compile to a plan that
      // depends on the IR action and the pools alone: rules sharing one action object
      // (translate/share.ts) share one plan while their pools are the same.
      const shareable = !variant && !rule.sessionPersistence && action.backends.every((b) => b.filters.length === 0 && !b.composite)
      if (shareable) {
        const held = sharedForward.get(action)
        if (held && held.choices.every((c, i) => c.pool === poolOf(action.backends[i]!, ctx.pools))) return held
      }
      const plan = compileForward(rule, action, ctx, variant)
      if (shareable) sharedForward.set(action, plan)
      return plan
    }
  }
}

/** Forward plans by IR action, for actions many rules share (compileAction). */
const sharedForward = new WeakMap<ForwardAction, ForwardPlan>()

/** The pool compileChoice gives a backend without a variant. */
function poolOf(b: WeightedBackend, pools: ReadonlyMap<string, RuntimePool>): RuntimePool | undefined {
  return b.invalid || !b.target ? undefined : pools.get(b.target.pool)
}

function compileForward(rule: HttpRule, action: ForwardAction, ctx: CompileContext, variant?: (base: RuntimePool) => RuntimePool): ForwardPlan {
  const choices = action.backends.map((b, i) => compileChoice(b, `${rule.id}/backend/${i}`, ctx, variant))
  const cumulative: number[] = []
  let total = 0
  for (const choice of choices) {
    total += Math.max(0, choice.weight)
    cumulative.push(total)
  }
  const session = rule.sessionPersistence
  if (session && choices.length > 1) return { kind: 'forward', choices, cumulative, totalWeight: total, sticky: compileSticky(session, action.backends) }
  return { kind: 'forward', choices, cumulative, totalWeight: total }
}

function compileChoice(backend: WeightedBackend, id: string, ctx: CompileContext, variant?: (base: RuntimePool) => RuntimePool): BackendChoice {
  const shared = backend.target ? ctx.pools.get(backend.target.pool) : undefined
  const pool = shared && variant ? variant(shared) : shared
  const invalid = backend.invalid ?? (backend.target && !pool ? `pool ${backend.target.pool} not in snapshot` : undefined)
  const chain = compileChain(filterFeatures(backend.filters, id), ctx)
  const composite = backend.composite && !backend.invalid ? compileComposite(backend.composite, ctx.pools, variant) : undefined
  return {
    weight: backend.weight,
    pool: invalid ? undefined : pool,
    invalid: invalid ?? (pool || composite ? undefined : 'no backend target'),
    chain,
    requestFilters: chain.request,
    responseFilters: chain.response,
    ...(composite ? { composite } : {}),
  }
}

/** One random draw over the weights; zero-weight choices are never picked. Undefined when all weights are 0. */
export function chooseBackend(plan: ForwardPlan): BackendChoice | undefined {
  const i = chooseIndex(plan)
  return i === undefined ? undefined : plan.choices[i]
}

/** chooseBackend's draw, as an index into plan.choices. */
export function chooseIndex(plan: ForwardPlan): number | undefined {
  if (plan.totalWeight <= 0) return undefined
  if (plan.choices.length === 1) return 0
  const draw = Math.random() * plan.totalWeight
  const cumulative = plan.cumulative
  for (let i = 0; i < cumulative.length; i++) if (draw < cumulative[i]!) return i
  return plan.choices.length - 1
}

function positive(ms: number | undefined): number | undefined {
  return ms !== undefined && ms > 0 ? ms : undefined
}

/**
 * Rule id → endpoints ("address:port") of its pools, for every rule of a port (a rule shared by
 * several listeners or hostnames gets the union): what long-lived sessions are checked against
 * when a plan goes live. Zero-weight backends count: a weight set to 0 drains, it does not cut
 * open sessions.
 */
export function routedEndpoints(port: PortPlan, plan: Plan): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const listener of port.ir.listeners) {
    for (const host of listener.virtualHosts) {
      for (const rule of host.rules) {
        let endpoints = out.get(rule.id)
        if (!endpoints) out.set(rule.id, (endpoints = new Set<string>()))
        if (rule.action.kind !== 'forward') continue
        for (const backend of rule.action.backends) {
          const pool = backend.target ? plan.ir.pools[backend.target.pool] : undefined
          for (const ep of pool?.endpoints ?? []) endpoints.add(endpointKey(ep.address, ep.port))
        }
      }
    }
  }
  return out
}

/**
 * Route removal, the one rule for every long-lived exchange (the front's direct WebSocket tunnels
 * and streams, the pipeline's WebSocket sessions): it survives a new plan while its rule id still
 * routes on its port and, when its endpoint is known, that endpoint is still one of the rule's.
 * `routed` is routedEndpoints() of the new plan's port (undefined: the port is gone).
 */
export function stillRouted(routed: ReadonlyMap<string, ReadonlySet<string>> | undefined, ruleId: string, endpoint: string | undefined): boolean {
  const endpoints = routed?.get(ruleId)
  return endpoints !== undefined && (endpoint === undefined || endpoints.has(endpoint))
}

/** Holds the live plan. The hot path reads `current` once per request. */
export class ActiveSnapshot {
  #current: Plan | undefined

  get current(): Plan | undefined {
    return this.#current
  }

  /** Publish a new plan: a single reference assignment. Returns the previous one. */
  swap(plan: Plan): Plan | undefined {
    const previous = this.#current
    this.#current = plan
    return previous
  }
}
