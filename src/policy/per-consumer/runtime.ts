/**
 * `perConsumer` (spec.ts): compiles every configuration of the feature with that feature's own
 * runtime and, per request, runs the one of the consumer the authn phase identified. It sits at
 * the start of the ratelimit phase: after authentication (the consumer is known) and before the
 * features it usually carries (rate limits, transformations) would have run. Head-only when all
 * its configurations are.
 */
import type { PolicyIr } from '../kind.ts'
import type { CompileContext, CompiledPolicy, PolicyRequest, PolicyRuntime } from '../runtime.ts'
import { principalOf } from '../security/request.ts'

/**
 * The runtime, given the registry to compile inner configurations with (runtimes.ts passes its
 * own: a function, so neither module needs the other while it loads).
 */
export function perConsumerRuntime(runtimes: () => Readonly<Record<string, PolicyRuntime<any>>>): PolicyRuntime<'perConsumer'> {
  return {
  name: 'perConsumer',
  phase: 'ratelimit',
  order: -10,
  compile(ir, ctx) {
    const compileOne = (inner: PolicyIr): CompiledPolicy => {
      const runtime = runtimes()[inner.name] as PolicyRuntime | undefined
      // a configuration without a runtime fails closed, as the chain does for unknown features
      if (!runtime || inner.name === 'perConsumer') return { headOnly: true, onRequest: () => ({ status: 500, body: `policy ${inner.name} is not available\n` }) }
      return (runtime.compile as (ir: PolicyIr, ctx: CompileContext) => CompiledPolicy)(inner, ctx)
    }
    const byConsumer = new Map(Object.entries(ir.spec.byConsumer).map(([id, inner]) => [id, compileOne(inner)]))
    const otherwise = ir.spec.otherwise ? compileOne(ir.spec.otherwise) : undefined
    const all = [...byConsumer.values(), ...(otherwise ? [otherwise] : [])]
    const pick = (req: PolicyRequest): CompiledPolicy | undefined => {
      const id = principalOf(req)?.consumer?.id
      return (id !== undefined ? byConsumer.get(id) : undefined) ?? otherwise
    }
    const direct = all.every((p) => p.headOnly && !p.onResponseHead && !p.wrapResponseBody && !p.onUpstreamOutcome)
    const chosen = direct ? undefined : new WeakMap<PolicyRequest, CompiledPolicy>()
    return {
      headOnly: direct,
      onRequest(req) {
        const p = pick(req)
        if (!p) return undefined
        chosen?.set(req, p)
        return p.onRequest?.(req)
      },
      ...(all.some((p) => p.onResponseHead)
        ? {
            onResponseHead(res, req) {
              chosen?.get(req)?.onResponseHead?.(res, req)
            },
          }
        : {}),
    }
  },
}
}
