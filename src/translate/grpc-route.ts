/**
 * GRPCRoute (gateway.networking.k8s.io/v1) → the same IR rules as an HTTPRoute: a gRPC call is
 * an HTTP/2 POST to `/<service>/<method>`, so each method match becomes a path match
 *   Exact service+method      → Exact `/svc/Method`
 *   Exact service only        → PathPrefix `/svc` (every method of the service)
 *   Exact method only         → RegularExpression `/[^/]+/Method`
 *   RegularExpression         → RegularExpression `/<service or [^/]+>/<method or [^/]+>`
 * and headers match as HTTPRoute headers (Exact, RegularExpression). Filters (request/response
 * header modifiers, mirror), weighted backendRefs, rule names, hostnames, ReferenceGrant and
 * status are HTTPRoute's (http-route.ts translates the rewritten rules). Backends must speak
 * HTTP/2: a Service port with appProtocol kubernetes.io/h2c.
 */
import type { K8sObject } from '../store/kinds.ts'
import type { PolicyIndex } from '../policy/attach.ts'
import type { Backends } from './backends.ts'
import { translateHttpRoute, type TranslatedRoute } from './http-route.ts'
import { list, obj, objs, str, type Json } from './util.ts'

/** Characters a gRPC service or method name may hold (the CRD's validation, dots for packages). */
const SERVICE = /^(?:[A-Za-z_][A-Za-z_0-9]*\.)*[A-Za-z_][A-Za-z_0-9]*$/
const METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/
const ANY_SEGMENT = '[^/]+'

/** Filters a GRPCRoute may carry (the others are HTTPRoute-only). */
const GRPC_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'])

/** Stands for a match that cannot be served; its IR rules are dropped after translation. */
const INVALID_MATCH = '/.portico-invalid-grpc-match'

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** A GRPCRoute method match as an HTTPRoute path match, or a problem. */
export function grpcMethodToPath(method: Json | undefined): { path: Json } | { problem: string } {
  if (!method) return { path: { type: 'PathPrefix', value: '/' } }
  const type = str(method.type) ?? 'Exact'
  const service = str(method.service)
  const name = str(method.method)
  if (service === undefined && name === undefined) return { problem: 'a method match needs a service or a method' }
  if (type === 'Exact') {
    if (service !== undefined && !SERVICE.test(service)) return { problem: `service ${service} is not a valid gRPC service name` }
    if (name !== undefined && !METHOD.test(name)) return { problem: `method ${name} is not a valid gRPC method name` }
    if (service !== undefined && name !== undefined) return { path: { type: 'Exact', value: `/${service}/${name}` } }
    if (service !== undefined) return { path: { type: 'PathPrefix', value: `/${service}` } }
    return { path: { type: 'RegularExpression', value: `/${ANY_SEGMENT}/${escapeRegex(name!)}` } }
  }
  if (type === 'RegularExpression') {
    for (const v of [service, name]) {
      if (v === undefined) continue
      try {
        new RegExp(v)
      } catch {
        return { problem: `invalid regular expression ${v}` }
      }
    }
    // each part matches within its own path segment
    return { path: { type: 'RegularExpression', value: `/(?:${service ?? ANY_SEGMENT})/(?:${name ?? ANY_SEGMENT})` } }
  }
  return { problem: `method match type ${type} is not supported` }
}

/** The GRPCRoute's rules rewritten as HTTPRoute rules (same object kind, so ids and grants stay GRPCRoute's). */
export function asHttpRules(route: K8sObject): { route: K8sObject; problems: Map<number, string[]> } {
  const problems = new Map<number, string[]>()
  const rules = objs(route.spec?.rules).map((rule, i) => {
    const mine: string[] = []
    const matches = list(rule.matches).map((m) => {
      const match = obj(m) ?? {}
      const converted = grpcMethodToPath(obj(match.method))
      if ('problem' in converted) {
        mine.push(converted.problem)
        return undefined
      }
      return { path: converted.path, ...(match.headers !== undefined ? { headers: match.headers } : {}) }
    })
    const filters = list(rule.filters).filter((f) => {
      const type = str(obj(f)?.type)
      if (type && GRPC_FILTERS.has(type)) return true
      mine.push(`filter ${type ?? '(no type)'} is not supported on a GRPCRoute`)
      return false
    })
    if (mine.length) problems.set(i, mine)
    const out: Json = { ...rule, filters }
    // an unusable match must match nothing rather than widen the rule: a path no gRPC call has
    out.matches = matches.map((m) => m ?? { path: { type: 'Exact', value: INVALID_MATCH } })
    delete out.timeouts
    delete out.retry
    return out
  })
  const { annotations: _dropped, ...metadata } = route.metadata
  return { route: { ...route, metadata, spec: { ...route.spec, rules } }, problems }
}

export function translateGrpcRoute(route: K8sObject, backends: Backends, gateways: readonly string[], register: boolean, policies?: PolicyIndex): TranslatedRoute {
  const { route: shaped, problems } = asHttpRules(route)
  const translated = translateHttpRoute(shaped, backends, gateways, register, policies)
  const t = { ...translated, rules: translated.rules.filter((r) => r.rule.match.path.value !== INVALID_MATCH) }
  if (problems.size === 0) return t
  // a rule with a problem answers 500 like a broken HTTPRoute rule, and Accepted says why
  const broken = new Set(problems.keys())
  const rules = t.rules.map((r) => (broken.has(r.ruleIndex) ? { ...r, rule: { id: r.rule.id, owner: r.rule.owner, match: r.rule.match, filters: [], action: { kind: 'respond', status: 500 } as const } } : r))
  const text = [...problems].map(([i, p]) => `rule ${i}: ${p.join('; ')}`).join('; ')
  const message = t.unsupported ? `${t.unsupported.message}; ${text}` : text
  return { rules, resolvedRefs: t.resolvedRefs, unsupported: { ...(t.unsupported ?? t.resolvedRefs), type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message } }
}
