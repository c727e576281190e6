/**
 * A rule's request chain: every policy feature and HTTPRoute filter that applies to it,
 * compiled once per snapshot and sorted by (phase, runtime order, manifest order). Both HTTP
 * paths run the same compiled entries with runRequestHooks: the front's direct path when every
 * entry is head-only (`direct`; a hook may still answer with a promise, which the front awaits
 * before it forwards), the Bun.serve pipeline (handler.ts) otherwise.
 *
 * What goes in, in manifest order: the listener's policies (Gateway/listener, already merged),
 * the rule's policies (route/rule; an entry here replaces the listener's of the same name), then
 * the rule's filters (or a backendRef's filters, for a backend's own chain).
 */
import type { HttpFilter, HttpRule } from '../../ir/types.ts'
import { PHASES, type PolicyIr, type PolicyName } from '../../policy/kind.ts'
import type { CompileContext, CompiledPolicy, PolicyRequest, ResponseHeadView, UpstreamOutcome, Verdict } from '../../policy/runtime.ts'
import { RUNTIMES } from '../../policy/runtimes.ts'

/** A request hook as the paths call it. */
export type RequestHook = (req: PolicyRequest) => Verdict | Promise<Verdict>
/** A response-head hook as the pipeline calls it (no view object allocated on the common path). */
export type ResponseHook = (req: PolicyRequest, headers: Headers, status: number) => void

export interface ChainEntry {
  readonly name: string
  readonly id: string
  readonly phase: (typeof PHASES)[number]
  readonly policy: CompiledPolicy
}

export interface Chain {
  /** In run order. */
  readonly entries: readonly ChainEntry[]
  readonly request: readonly RequestHook[]
  readonly response: readonly ResponseHook[]
  readonly bodies: readonly CompiledPolicy[]
  readonly outcomes: readonly CompiledPolicy[]
  /** Every entry is head-only (reads only the head, maybe asynchronously; no response/body/outcome hooks): the front can run it. */
  readonly direct: boolean
  /** Policy ids (state keys) of the entries. */
  readonly ids: readonly string[]
}

export const EMPTY_CHAIN: Chain = { entries: [], request: [], response: [], bodies: [], outcomes: [], direct: true, ids: [] }

const PHASE_RANK = new Map<string, number>(PHASES.map((p, i) => [p, i]))

/** The listener's entries minus those the rule overrides, then the rule's. */
export function mergePolicies(listener: readonly PolicyIr[] | undefined, rule: readonly PolicyIr[] | undefined): readonly PolicyIr[] {
  if (!listener || listener.length === 0) return rule ?? []
  if (!rule || rule.length === 0) return listener
  const overridden = new Set(rule.map((p) => p.name))
  return [...listener.filter((p) => !overridden.has(p.name)), ...rule]
}

/** HTTPRoute filters as chain features: named by their type, identified by where they sit. */
export function filterFeatures(filters: readonly HttpFilter[], idPrefix: string): PolicyIr[] {
  return filters.map((f, i) => ({ name: f.type, id: `${idPrefix}#filter/${i}`, spec: f }) as PolicyIr)
}

export function ruleFeatures(rule: HttpRule, listenerPolicies: readonly PolicyIr[] | undefined): readonly PolicyIr[] {
  const policies = mergePolicies(listenerPolicies, rule.policies)
  if (rule.filters.length === 0) return policies
  return [...policies, ...filterFeatures(rule.filters, rule.id)]
}

export function compileChain(features: readonly PolicyIr[], ctx: CompileContext): Chain {
  if (features.length === 0) return EMPTY_CHAIN
  const sorted = features
    .map((ir, index) => {
      const runtime = RUNTIMES[ir.name as PolicyName] as (typeof RUNTIMES)[PolicyName] | undefined
      return { ir, index, runtime, rank: runtime ? (PHASE_RANK.get(runtime.phase) ?? 0) : 0, order: runtime?.order ?? 0 }
    })
    .sort((a, b) => a.rank - b.rank || a.order - b.order || a.index - b.index)
  const entries: ChainEntry[] = sorted.map(({ ir, runtime }) => ({
    name: ir.name,
    id: ir.id,
    phase: runtime?.phase ?? 'client',
    // A feature this build has no runtime for fails closed: its rule answers 500.
    policy: runtime ? (runtime.compile as (ir: PolicyIr, ctx: CompileContext) => CompiledPolicy)(ir, ctx) : unavailable(ir.name),
  }))
  const request: RequestHook[] = []
  const response: ResponseHook[] = []
  for (const { policy } of entries) {
    if (policy.onRequest) request.push(policy.onRequest.bind(policy))
    const onHead = policy.onResponseHead
    if (onHead) response.push((req, headers, status) => onHead.call(policy, { status, headers } satisfies ResponseHeadView, req))
  }
  return {
    entries,
    request,
    response,
    bodies: entries.filter((e) => e.policy.wrapResponseBody).map((e) => e.policy),
    outcomes: entries.filter((e) => e.policy.onUpstreamOutcome).map((e) => e.policy),
    direct: entries.every(({ policy: p }) => p.headOnly && !p.onResponseHead && !p.wrapResponseBody && !p.onUpstreamOutcome),
    ids: entries.map((e) => e.id),
  }
}

function unavailable(name: string): CompiledPolicy {
  const reply: Verdict = { status: 500, body: `policy ${name} is not available\n` }
  return { headOnly: true, onRequest: () => reply }
}

/**
 * Run request hooks from `from`: synchronously while they answer synchronously, then as a
 * promise chain. undefined = every hook let the request through. Each hook runs exactly once per
 * request on whichever path serves it (a global rate limit counts once).
 */
export function runRequestHooks(hooks: readonly RequestHook[], req: PolicyRequest, from = 0): Verdict | Promise<Verdict> {
  for (let i = from; i < hooks.length; i++) {
    const verdict = hooks[i]!(req)
    if (verdict === undefined) continue
    if (verdict instanceof Promise) return verdict.then((v) => (v === undefined ? runRequestHooks(hooks, req, i + 1) : v))
    return verdict
  }
  return undefined
}

export function reportOutcome(chain: Chain, endpoint: string, outcome: UpstreamOutcome): void {
  for (const policy of chain.outcomes) policy.onUpstreamOutcome!(endpoint, outcome)
}
