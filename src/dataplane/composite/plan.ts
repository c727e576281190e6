/**
 * A Composite compiled once per snapshot: each member bound to its runtime pool (a pool variant
 * when the rule has BackendTrafficPolicy settings), its deadline resolved.
 */
import type { CompositeIr, CompositeMemberIr } from '../../ir/types.ts'
import type { RuntimePool } from '../upstream/pool.ts'

export interface CompositePlan {
  readonly ir: CompositeIr
  readonly members: readonly MemberPlan[]
  /** Some member takes (part of) the client's JSON body: it is read once, before the calls. */
  readonly wantsBody: boolean
  /** The request metrics' `backend` label for requests served by this Composite: its id. */
  readonly metrics: { readonly ir: { readonly key: string } }
}

export interface MemberPlan {
  readonly ir: CompositeMemberIr
  /** Undefined: the backendRef did not resolve, or its pool is not in the snapshot (the call always fails). */
  readonly pool: RuntimePool | undefined
  /** The member's own deadline, within the Composite's. */
  readonly timeoutMs: number
}

export function compileComposite(ir: CompositeIr, pools: ReadonlyMap<string, RuntimePool>, variant?: (base: RuntimePool) => RuntimePool): CompositePlan {
  const members = ir.members.map((m): MemberPlan => {
    const shared = m.pool ? pools.get(m.pool) : undefined
    return { ir: m, pool: shared && variant ? variant(shared) : shared, timeoutMs: Math.min(m.timeoutMs ?? ir.timeoutMs, ir.timeoutMs) }
  })
  return { ir, members, wantsBody: ir.members.some((m) => m.requestBody !== undefined), metrics: { ir: { key: ir.id } } }
}

/** Pool keys a Composite reads (snapshot.ts reuses a compiled rule only while they are the same pools). */
export function compositePoolKeys(ir: CompositeIr): string[] {
  return ir.members.flatMap((m) => (m.pool ? [m.pool] : []))
}
