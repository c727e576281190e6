/**
 * The HTTPRoute filters as chain entries: one runtime per filter type, in the transform phase
 * at the same order, so a rule's filters keep their manifest order (request and response
 * hooks alike, as before the chain). They edit the pipeline's RequestState (upstream Headers,
 * path, authority, mirrors), so they are not head-only: a rule with filters takes the pipeline.
 */
import type { HttpFilter } from '../../../ir/types.ts'
import type { CompiledPolicy, PolicyRequest, PolicyRuntime } from '../../../policy/runtime.ts'
import type { RequestState } from '../context.ts'
import type { CompiledFilters } from './types.ts'
import { requestHeaderModifier, responseHeaderModifier } from './header-modifier.ts'
import { urlRewrite } from './url-rewrite.ts'
import { requestMirror } from './mirror.ts'
import { cors } from './cors.ts'

type FilterSpec<T extends HttpFilter['type']> = Extract<HttpFilter, { type: T }>

declare module '../../../policy/kind.ts' {
  interface PolicySpecs {
    RequestHeaderModifier: FilterSpec<'RequestHeaderModifier'>
    ResponseHeaderModifier: FilterSpec<'ResponseHeaderModifier'>
    URLRewrite: FilterSpec<'URLRewrite'>
    RequestMirror: FilterSpec<'RequestMirror'>
    CORS: FilterSpec<'CORS'>
  }
}

function asPolicy(filters: CompiledFilters): CompiledPolicy {
  const request = filters.request
  const response = filters.response
  return {
    headOnly: false,
    ...(request.length > 0 ? { onRequest: request.length === 1 ? (req: PolicyRequest) => request[0]!(req as RequestState) : (req: PolicyRequest) => runAll(filters, req as RequestState) } : {}),
    ...(response.length > 0 ? { onResponseHead: (res, req) => { for (const f of response) f(req as RequestState, res.headers) } } : {}),
  } satisfies CompiledPolicy
}

function runAll(filters: CompiledFilters, state: RequestState) {
  for (const f of filters.request) {
    const verdict = f(state)
    if (verdict) return verdict
  }
  return undefined
}

function core<T extends HttpFilter['type']>(name: T, build: (spec: FilterSpec<T>, ctx: Parameters<PolicyRuntime['compile']>[1]) => CompiledFilters): PolicyRuntime<T> {
  return { name, phase: 'transform', order: 0, compile: (ir, ctx) => asPolicy(build(ir.spec as unknown as FilterSpec<T>, ctx)) } as PolicyRuntime<T>
}

export const requestHeaderModifierRuntime = core('RequestHeaderModifier', (spec) => ({ request: [requestHeaderModifier(spec)], response: [] }))
export const responseHeaderModifierRuntime = core('ResponseHeaderModifier', (spec) => ({ request: [], response: [responseHeaderModifier(spec)] }))
export const urlRewriteRuntime = core('URLRewrite', (spec, ctx) => ({ request: [urlRewrite(spec.hostname, spec.path, ctx.prefix)], response: [] }))
export const requestMirrorRuntime = core('RequestMirror', (spec, ctx) => ({ request: [requestMirror(ctx.pools.get(spec.backend.pool), spec.percent)], response: [] }))
export const corsRuntime = core('CORS', (spec) => cors(spec))
