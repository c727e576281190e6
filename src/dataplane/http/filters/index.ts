/** Compile IR filters into request/response phase functions, once per snapshot. */
import type { HttpFilter } from '../../../ir/types.ts'
import type { RuntimePool } from '../../upstream/pool.ts'
import type { CompiledFilters, RequestFilter, ResponseFilter } from './types.ts'
import { requestHeaderModifier, responseHeaderModifier } from './header-modifier.ts'
import { urlRewrite } from './url-rewrite.ts'
import { requestMirror } from './mirror.ts'
import { cors } from './cors.ts'

export interface FilterCompileContext {
  /** The rule's PathPrefix without trailing slashes, for ReplacePrefixMatch. */
  readonly prefix: string | undefined
  readonly pools: ReadonlyMap<string, RuntimePool>
}

export function compileFilters(filters: readonly HttpFilter[], ctx: FilterCompileContext): CompiledFilters {
  const request: RequestFilter[] = []
  const response: ResponseFilter[] = []
  for (const filter of filters) {
    switch (filter.type) {
      case 'RequestHeaderModifier':
        request.push(requestHeaderModifier(filter))
        break
      case 'ResponseHeaderModifier':
        response.push(responseHeaderModifier(filter))
        break
      case 'URLRewrite':
        request.push(urlRewrite(filter.hostname, filter.path, ctx.prefix))
        break
      case 'RequestMirror':
        request.push(requestMirror(ctx.pools.get(filter.backend.pool), filter.percent))
        break
      case 'CORS': {
        const compiled = cors(filter)
        request.push(...compiled.request)
        response.push(...compiled.response)
        break
      }
    }
  }
  return { request, response }
}

export type { CompiledFilters, RequestFilter, ResponseFilter } from './types.ts'
