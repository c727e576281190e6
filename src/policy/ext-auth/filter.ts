/**
 * The Gateway API ExternalAuth HTTPRoute filter (GEP-1494, HTTP mode) on the extAuth runtime:
 * translate/filters.ts turns `externalAuth` (backendRef, http.path, http.allowedHeaders,
 * http.allowedResponseHeaders) into the same spec a SecurityPolicy's extAuth has. It runs in the
 * authn phase, before the rule's other filters.
 */
import type { HttpFilter } from '../../ir/types.ts'
import type { PolicyRuntime } from '../runtime.ts'
import { extAuthRuntime } from './runtime.ts'

type ExternalAuthFilter = Extract<HttpFilter, { type: 'ExternalAuth' }>

declare module '../kind.ts' {
  interface PolicySpecs {
    ExternalAuth: ExternalAuthFilter
  }
}

export const externalAuthFilterRuntime: PolicyRuntime<'ExternalAuth'> = {
  name: 'ExternalAuth',
  phase: 'authn',
  order: 50,
  compile: (ir, ctx) => extAuthRuntime.compile({ name: 'extAuth', id: ir.id, spec: ir.spec, ...(ir.pools ? { pools: ir.pools } : {}) }, ctx),
}
