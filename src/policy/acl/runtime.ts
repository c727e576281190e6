/**
 * `acl` (spec.ts): after authentication, the consumer's groups decide. No consumer: 401 (an
 * authentication plugin must run first); a consumer outside `allow` or inside `deny`: 403 "You
 * cannot consume this service", as Kong answers. Allowed: X-Consumer-Groups lists the consumer's
 * groups upstream (set or cleared, so a client cannot supply it). Synchronous and head-only.
 */
import type { PolicyRuntime } from '../runtime.ts'
import { principalOf } from '../security/request.ts'
import { kongError } from '../consumer/identity.ts'

export const aclRuntime: PolicyRuntime<'acl'> = {
  name: 'acl',
  phase: 'authz',
  // after `authorization` (Kong: ip-restriction 990 runs before acl 950)
  order: 10,
  compile(ir) {
    const allow = ir.spec.allow?.length ? new Set(ir.spec.allow) : undefined
    const deny = ir.spec.deny?.length ? new Set(ir.spec.deny) : undefined
    const hide = ir.spec.hideGroupsHeader
    return {
      headOnly: true,
      onRequest(req) {
        const consumer = principalOf(req)?.consumer
        if (!consumer) return kongError(req, 401, 'Unauthorized')
        const groups = consumer.groups ?? []
        const blocked = (allow && !groups.some((g) => allow.has(g))) || (deny && groups.some((g) => deny.has(g)))
        if (blocked) return kongError(req, 403, 'You cannot consume this service')
        if (hide || groups.length === 0) req.removeUpstreamHeader('x-consumer-groups')
        else req.setUpstreamHeader('x-consumer-groups', groups.join(', '))
        return undefined
      },
    }
  },
}
