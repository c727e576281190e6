/**
 * `requireHttps` (spec.ts). It needs the request's scheme, which only the pipeline's request
 * carries, so it is not head-only; it runs first (Kong checks protocols while routing, before
 * any plugin).
 */
import type { PolicyRequest, PolicyRuntime } from '../runtime.ts'
import { kongError } from '../consumer/identity.ts'

interface SchemedRequest extends PolicyRequest {
  readonly scheme: 'http' | 'https'
  readonly query: string
}

export const requireHttpsRuntime: PolicyRuntime<'requireHttps'> = {
  name: 'requireHttps',
  phase: 'client',
  order: -100,
  compile(ir) {
    const status = ir.spec.status
    return {
      headOnly: false,
      onRequest(req) {
        const r = req as SchemedRequest
        if (r.scheme !== 'http') return undefined
        if (status === 426) return kongError(req, 426, 'Please use HTTPS protocol')
        return { status, headers: [['location', `https://${req.header('host')?.replace(/:\d+$/, '') ?? req.host}${req.path}${r.query}`]] }
      },
    }
  },
}
