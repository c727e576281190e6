/**
 * `requestSizeLimit` (spec.ts): a declared Content-Length above the limit is refused with 413
 * before the body is read (Kong's answer: "Request size limit exceeded"); with
 * requireContentLength a request without one gets 411. It runs in the chain, after
 * authentication (as Kong's priorities order it), so an unauthenticated client learns nothing
 * about sizes. A streamed (chunked) body without Content-Length is not measured here: the
 * gateway's body limit (--max-body-size, portico.dev/max-body-size) still bounds it. Head-only.
 */
import type { PolicyRuntime } from '../runtime.ts'
import { kongError } from '../consumer/identity.ts'

export const requestSizeLimitRuntime: PolicyRuntime<'requestSizeLimit'> = {
  name: 'requestSizeLimit',
  phase: 'authz',
  // Kong's priorities: ip-restriction 990 (authorization, order 0), request-size-limiting 951, acl 950
  order: 5,
  compile(ir) {
    const { maxBytes, requireContentLength } = ir.spec
    return {
      headOnly: true,
      onRequest(req) {
        const raw = req.header('content-length')
        if (raw === null || !/^\d+$/.test(raw.trim())) return requireContentLength ? kongError(req, 411, 'A valid Content-Length header is required') : undefined
        return Number(raw.trim()) > maxBytes ? kongError(req, 413, 'Request size limit exceeded') : undefined
      },
    }
  },
}
