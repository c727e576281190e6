/**
 * TCPRoute, UDPRoute and TLSRoute rules → weighted backends. These routes have no matches or
 * filters; the listener (and SNI, for TLS) selects them, so only backends need translating.
 */
import type { WeightedBackend } from '../ir/types.ts'
import { l4BackendPolicies, type PolicyIndex } from '../policy/attach.ts'
import type { PolicyIr } from '../policy/kind.ts'
import type { K8sObject } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import type { Backends, PoolUse, RefProblem } from './backends.ts'
import { generationOf } from './context.ts'
import { COND, REASON } from './reasons.ts'
import type { Condition } from './types.ts'
import { int, objs, str } from './util.ts'

export interface L4Rule {
  readonly ruleIndex: number
  readonly backends: readonly WeightedBackend[]
  /** BackendTrafficPolicy proxyProtocol attached to the route or this rule. */
  readonly proxyProtocol?: 'V1' | 'V2'
  /** BackendTrafficPolicy backend features (loadBalancer, healthCheck, circuitBreaker; UDP: loadBalancer) of the route and this rule merged, the rule's winning. */
  readonly policies?: readonly PolicyIr[]
}

export interface TranslatedL4Route {
  readonly rules: readonly L4Rule[]
  readonly resolvedRefs: Condition
  readonly unsupported?: Condition
}

export function translateL4Route(route: K8sObject, backends: Backends, gateways: readonly string[], register: boolean, policies?: PolicyIndex): TranslatedL4Route {
  const gen = generationOf(route)
  const use: PoolUse = route.kind === 'UDPRoute' ? 'udp' : 'tcp'
  const problems: RefProblem[] = []
  const unsupported: string[] = []
  const rules = objs(route.spec?.rules).map((rule, ruleIndex): L4Rule => {
    const out: WeightedBackend[] = []
    for (const ref of objs(rule.backendRefs)) {
      const weight = ref.weight === undefined ? 1 : int(ref.weight)
      if (weight === undefined || weight < 0 || weight > 1_000_000) {
        unsupported.push(`rule ${ruleIndex}: backendRef weight ${String(ref.weight)} must be 0-1000000`)
        continue
      }
      const r = backends.resolve(route, ref, use, gateways, register && weight > 0)
      if ('problem' in r && !r.problem.silent) problems.push(r.problem)
      if (weight === 0) continue
      if ('problem' in r) out.push({ weight, invalid: r.problem.message, filters: [] })
      else out.push({ weight, target: { pool: r.pool }, filters: [], ...(r.tls && route.kind === 'TLSRoute' ? { backendTls: r.tls } : {}) })
    }
    const proxyProtocol = policies?.l4ProxyProtocol(route, str(rule.name))
    const backendPolicies = l4BackendPolicies(policies?.rulePolicies(route, str(rule.name)), route.kind === 'UDPRoute')
    return { ruleIndex, backends: out, ...(proxyProtocol ? { proxyProtocol } : {}), ...(backendPolicies ? { policies: backendPolicies } : {}) }
  })
  const resolvedRefs = problems.length
    ? condition(COND.ResolvedRefs, 'False', problems[0]!.reason, [...new Set(problems.map((p) => p.message))].join('; '), gen)
    : condition(COND.ResolvedRefs, 'True', REASON.ResolvedRefs, 'All references are resolved', gen)
  const result: { -readonly [K in keyof TranslatedL4Route]: TranslatedL4Route[K] } = { rules, resolvedRefs }
  if (unsupported.length) result.unsupported = condition(COND.Accepted, 'False', REASON.UnsupportedValue, unsupported.join('; '), gen)
  return result
}
