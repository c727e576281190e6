/**
 * The contract every policy kind runs (Hono's *.case.test.ts idea): call runPolicyCase from the
 * kind's own test file with a few specs and requests. For each spec it checks that
 *  - the feature compiles from its IR through the one runtime registry, with a known phase;
 *  - `headOnly` is honest: onRequest (synchronous or not) touches nothing of the request but the
 *    PolicyRequest view (no body, no pipeline internals), and the rule stays `direct`;
 *  - state survives a swap: a change to an unrelated Service keeps the compiled rule (same
 *    object) and the policy's state, a full rebuild (new IR objects, same ids: what a Secret
 *    change causes) keeps the state, and removing the policy forgets it;
 *  - both HTTP paths give the same verdict: every request is sent to a rule the front serves
 *    itself and to the same rule forced through the Bun.serve pipeline, and the status, body,
 *    chosen backend and the `expect` checks must agree.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { PHASES, type PolicyIr, type PolicyName, type PolicySpecs } from '../../src/policy/kind.ts'
import { RUNTIMES } from '../../src/policy/runtimes.ts'
import type { PolicyRequest, Verdict } from '../../src/policy/runtime.ts'
import { PolicyStateRegistry } from '../../src/dataplane/policy-state.ts'
import { compile, type Plan, type RoutePlan } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import type { HttpRule, LoadBalancerPolicy, Snapshot } from '../../src/ir/types.ts'
import { startEcho, type EchoRequest, type EchoUpstream } from '../support/echo-upstream.ts'
import { startDataplane, type Running } from '../dataplane/harness.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'

export interface CaseRequest {
  readonly name: string
  readonly method?: string
  readonly headers?: Record<string, string>
  /** Checked on each path's result (the two results must also agree on status, body and backend). */
  readonly expect: (result: PathResult) => void
}

export interface PathResult {
  readonly path: 'direct' | 'pipeline'
  readonly status: number
  readonly body: string
  /** What the backend received (undefined when the request was answered locally). */
  readonly upstream: EchoRequest | undefined
}

export interface PolicyVariant<K extends PolicyName> {
  readonly label: string
  readonly spec: PolicySpecs[K]
  /** Load balancing of the two-endpoint pool (ConsistentHash ClientIP shows which client IP pickers saw). */
  readonly lb?: LoadBalancerPolicy
  readonly requests: readonly CaseRequest[]
}

export interface PolicyCase<K extends PolicyName> {
  readonly name: K
  readonly variants: readonly PolicyVariant<K>[]
}

const CASE_HEADER = 'x-policy-case'

/** A PolicyRequest over plain headers that throws on anything else a policy might reach for (req, body, state). */
export function strictRequest(headers: Record<string, string>, method = 'GET'): PolicyRequest {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  const edits = new Map<string, string | null>()
  const base: PolicyRequest = {
    method,
    path: '/case',
    query: '',
    host: 'policy.test',
    header: (name) => lower.get(name) ?? null,
    peerIp: '127.0.0.1',
    clientIp: '127.0.0.1',
    setUpstreamHeader: (name, value) => void edits.set(name.toLowerCase(), value),
    removeUpstreamHeader: (name) => void edits.set(name.toLowerCase(), null),
    generateRequestId: true,
    get requestId() {
      return edits.has('x-request-id') ? (edits.get('x-request-id') ?? undefined) : lower.get('x-request-id')
    },
  }
  const known = new Set(Object.keys(base))
  return new Proxy(base, {
    get(target, key, receiver) {
      if (typeof key === 'string' && !known.has(key) && key !== 'then') throw new Error(`head-only policy read ${key}, which is not part of PolicyRequest`)
      return Reflect.get(target, key, receiver)
    },
  })
}

export function runPolicyCase<K extends PolicyName>(c: PolicyCase<K>): void {
  const runtime = RUNTIMES[c.name]
  for (const [index, variant] of c.variants.entries()) {
    const ir: PolicyIr<K> = { name: c.name, id: `test/${c.name}/${index}#${c.name}`, spec: variant.spec } as PolicyIr<K>

    describe(`${c.name}: ${variant.label}`, () => {
      test('compiles from its IR through the runtime registry', () => {
        expect(runtime.name).toBe(c.name)
        expect(PHASES).toContain(runtime.phase)
        const compiled = runtime.compile(ir, { pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined })
        expect(typeof compiled.headOnly).toBe('boolean')
      })

      test('head-only is honest: reads only the PolicyRequest view (also after an await), keeps the rule direct', async () => {
        const compiled = runtime.compile(ir, { pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined })
        if (!compiled.headOnly) return
        expect(compiled.onResponseHead).toBeUndefined()
        expect(compiled.wrapResponseBody).toBeUndefined()
        for (const r of variant.requests) {
          // An asynchronous verdict (a cache miss, a Redis call) is awaited by the front's direct path:
          // what it reads after its await must be the view too.
          await compiled.onRequest?.(strictRequest(r.headers ?? {}, r.method))
        }
        const plan = compile(simple(0, [rule({ policies: [ir] })], [pool('p1', [1])]), new EndpointRegistry())
        expect(firstRule(plan).direct).toBe(true)
      })

      test('state survives a swap; removing the policy forgets it', () => {
        const registry = new EndpointRegistry()
        const policyRule = rule({ policies: [ir] })
        const other = rule({ match: { path: { type: 'PathPrefix', value: '/other' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'p2' }, filters: [] }] } })
        const p1 = pool('p1', [1])
        const first = compile(simple(0, [policyRule, other], [p1, pool('p2', [2])]), registry)
        const marker = first.policyState.obtain(ir.id, () => ({ tokens: 5 }))
        // An unrelated Service changed (endpoints of p2): the rule and its state are reused as they are.
        const second = compile(simple(0, [policyRule, other], [p1, pool('p2', [3, 4])], 2), registry)
        expect(firstRule(second)).toBe(firstRule(first))
        expect(second.policyState.peek(ir.id)).toBe(marker)
        // A full rebuild (a Secret changed): new IR objects with the same ids; the state is kept.
        const rebuilt = structuredClone(simple(0, [policyRule, other], [pool('p1', [1]), pool('p2', [3, 4])], 3)) as Snapshot
        const third = compile(rebuilt, registry)
        expect(firstRule(third)).not.toBe(firstRule(first))
        expect(third.policyState.peek(ir.id)).toBe(marker)
        // The policy is gone from the plan: so is its state.
        const fourth = compile(simple(0, [{ ...policyRule, policies: [] } as HttpRule, other], [pool('p1', [1]), pool('p2', [3, 4])], 4), registry)
        expect(fourth.policyState.peek(ir.id)).toBeUndefined()
      })

      describe('the same verdict on both paths', () => {
        let a: EchoUpstream
        let b: EchoUpstream
        let gw: Running
        let plan: Plan
        const sent = new Map<string, PathResult>()

        beforeAll(async () => {
          a = startEcho('a')
          b = startEcho('b')
          const backendPool = { ...pool('p1', [a.port, b.port]), ...(variant.lb ? { policy: variant.lb } : {}) }
          const direct = rule({ match: { path: { type: 'PathPrefix', value: '/direct' } }, policies: [ir] })
          // A filter that changes nothing still takes the rule off the direct path.
          const pipeline = rule({
            match: { path: { type: 'PathPrefix', value: '/pipeline' } },
            policies: [ir],
            filters: [{ type: 'RequestHeaderModifier', set: [], add: [], remove: [] }],
          })
          gw = await startDataplane(simple(0, [direct, pipeline], [backendPool]))
          plan = gw.dp.active.current!
        })

        afterAll(async () => {
          await gw.stop()
          await a.stop()
          await b.stop()
        })

        test('the front serves one rule itself and the pipeline the other', () => {
          const [direct, pipeline] = plan.ports.get(0)!.router.listeners[0]!.catchAll!.rules.rules
          expect(pipeline!.direct).toBe(false)
          const compiled = runtime.compile(ir, { pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined })
          expect(direct!.direct).toBe(compiled.headOnly)
        })

        for (const [n, r] of variant.requests.entries()) {
          test(r.name, async () => {
            const results: PathResult[] = []
            for (const path of ['direct', 'pipeline'] as const) {
              const caseId = `${index}-${n}-${path}-${Math.random()}`
              const res = await fetch(`${gw.base}/${path}/case`, { method: r.method ?? 'GET', headers: { ...r.headers, [CASE_HEADER]: caseId } })
              const body = await res.text()
              const upstream = [...a.requests, ...b.requests].find((q) => q.headers[CASE_HEADER] === caseId)
              const result: PathResult = { path, status: res.status, body: upstream ? upstream.name : body, upstream }
              r.expect(result)
              results.push(result)
              sent.set(`${n}/${path}`, result)
            }
            const [direct, pipeline] = results
            expect(direct!.status).toBe(pipeline!.status)
            // The body: the local answer, or which endpoint answered when the pick is deterministic.
            if (!direct!.upstream || variant.lb?.type === 'ConsistentHash') expect(direct!.body).toBe(pipeline!.body)
          })
        }
      })
    })
  }
}

function firstRule(plan: Plan): RoutePlan {
  return plan.ports.get(0)!.router.listeners[0]!.catchAll!.rules.rules[0]!
}

/** The verdict type, for case files that call a compiled policy directly. */
export type { Verdict }
