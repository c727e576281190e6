/**
 * compile() reuses RoutePlans across compiles (the same IR rule, checked against the pools and
 * policy states it bound only when those changed since: CompileMemo.poolsEpoch,
 * PolicyStateRegistry.epoch). Over random sequences of changes (rules added and removed, pools'
 * endpoints changed, pools dropped and brought back as the very same IR object), the plan of a
 * registry that compiled every step must equal a fresh compile of the same snapshot, and never
 * point at a pool that is not the live plan's.
 */
import { describe, expect, test } from 'bun:test'
import { compile, type ForwardPlan, type Plan, type RoutePlan } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import type { BackendPool, HttpRule } from '../../src/ir/types.ts'
import { forwardTo, pool, rule, simple } from './ir.ts'

function rulesOf(plan: Plan): readonly RoutePlan[] {
  return plan.ports.get(0)!.router.listeners[0]!.catchAll!.rules.rules
}

/** What a plan serves, without object identities: rule ids, and each backend's pool key, endpoints and validity. */
function shape(plan: Plan) {
  return rulesOf(plan).map((r) => ({
    id: r.id,
    direct: r.direct,
    choices: r.action.kind === 'forward' ? r.action.choices.map((c) => ({ key: c.pool?.key, members: c.pool?.members.map((m) => m.state.key), invalid: c.invalid })) : [],
  }))
}

/** A seeded PRNG, so a failure replays. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

describe('incremental compile', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`equals a fresh compile after every step (seed ${seed})`, () => {
      const random = prng(seed)
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
      const registry = new EndpointRegistry()
      // Pool IR objects by key; a dropped pool keeps its object so it can come back identical.
      const known = new Map<string, BackendPool>([
        ['p1', pool('p1', [1])],
        ['p2', pool('p2', [2])],
        ['p3', pool('p3', [3, 4])],
      ])
      const live = new Set(['p1', 'p2', 'p3'])
      // half the rules share one action object per pool, as the translator's do (compile then shares their forward plan)
      const sharedActions = new Map(['p1', 'p2', 'p3'].map((k) => [k, forwardTo(k)] as const))
      const actionTo = (key: string) => (random() < 0.5 ? sharedActions.get(key)! : forwardTo(key))
      let rules: HttpRule[] = Array.from({ length: 20 }, (_, i) => rule({ match: { path: { type: 'PathPrefix', value: `/r${i}` } }, action: actionTo(pick(['p1', 'p2', 'p3'])) }))
      let next = 20
      for (let step = 0; step < 60; step++) {
        const what = random()
        if (what < 0.3) rules = [...rules, rule({ match: { path: { type: 'PathPrefix', value: `/r${next++}` } }, action: actionTo(pick(['p1', 'p2', 'p3'])) })]
        else if (what < 0.45 && rules.length > 1) rules = rules.filter((_, i) => i !== Math.floor(random() * rules.length))
        else if (what < 0.65) {
          const key = pick(['p1', 'p2', 'p3'])
          known.set(key, pool(key, [10 + Math.floor(random() * 5)]))
          live.add(key)
        } else if (what < 0.8) live.delete(pick(['p1', 'p2', 'p3']))
        else if (what < 0.95) live.add(pick(['p1', 'p2', 'p3']))
        // else: the same snapshot again
        const snapshot = simple(0, rules, [...live].map((k) => known.get(k)!), step + 2)
        const plan = compile(snapshot, registry)
        const fresh = compile(snapshot, new EndpointRegistry())
        expect(shape(plan)).toEqual(shape(fresh))
        for (const r of rulesOf(plan))
          if (r.action.kind === 'forward') for (const c of r.action.choices) if (c.pool) expect(c.pool).toBe(plan.pools.get(c.pool.key)!)
      }
    })
  }

  test('an unchanged rule is the same RoutePlan while its pool is, and a new one once its pool changes', () => {
    const registry = new EndpointRegistry()
    const r = rule({ action: forwardTo('p1') })
    const other = rule({ match: { path: { type: 'PathPrefix', value: '/other' } }, action: forwardTo('p2') })
    const p1 = pool('p1', [1])
    const first = compile(simple(0, [r], [p1, pool('p2', [2])]), registry)
    // another rule and another pool changed: r is reused without being looked at again
    const second = compile(simple(0, [r, other], [p1, pool('p2', [3])], 2), registry)
    expect(rulesOf(second)[0]).toBe(rulesOf(first)[0]!)
    // p1's endpoints changed: r is compiled again, against the new pool
    const third = compile(simple(0, [r, other], [pool('p1', [5]), pool('p2', [3])], 3), registry)
    expect(rulesOf(third)[0]).not.toBe(rulesOf(first)[0]!)
    const choice = (rulesOf(third)[0]!.action as ForwardPlan).choices[0]!
    expect(choice.pool).toBe(third.pools.get('p1')!)
  })
})
