/**
 * `authorization`: the first rule whose principal matches decides (Allow, or Deny → 403); no
 * match: `defaultAction`. A principal matches when every field it sets matches: the client
 * address in one of `clientCIDRs`; a JWT from `jwt.provider` (verified earlier in the chain by
 * the `jwt` feature) with every listed claim holding one of its values and every scope in its
 * `scope` claim. Synchronous and head-only.
 */
import { cidrMatcher } from '../cidr.ts'
import type { PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'
import { claimValue } from '../auth-jwt/runtime.ts'
import { FORBIDDEN, principalOf } from '../security/request.ts'
import { kongError } from '../consumer/identity.ts'
import type { AuthorizationRuleSpec } from './spec.ts'

export const authorizationRuntime: PolicyRuntime<'authorization'> = {
  name: 'authorization',
  phase: 'authz',
  order: 0,
  compile(ir) {
    const rules = ir.spec.rules.map((r) => ({ allow: r.action === 'Allow', matches: matcher(r) }))
    const deny = ir.spec.deny
    const refuse = deny ? (req: PolicyRequest) => kongError(req, deny.status, deny.message) : () => FORBIDDEN
    const allowByDefault = ir.spec.defaultAction === 'Allow'
    return {
      headOnly: true,
      onRequest(req) {
        for (const r of rules) if (r.matches(req)) return r.allow ? undefined : refuse(req)
        return allowByDefault ? undefined : refuse(req)
      },
    }
  },
}

function matcher(rule: AuthorizationRuleSpec): (req: PolicyRequest) => boolean {
  const checks: ((req: PolicyRequest) => boolean)[] = []
  const cidrs = rule.principal.clientCIDRs
  if (cidrs?.length) {
    const inRange = cidrMatcher(cidrs)
    checks.push((req) => inRange(req.clientIp))
  }
  const jwt = rule.principal.jwt
  if (jwt) {
    const claims = jwt.claims ?? []
    const scopes = jwt.scopes ?? []
    checks.push((req) => {
      const c = principalOf(req)?.jwt?.get(jwt.provider)
      if (!c) return false
      for (const m of claims) {
        const v = claimValue(c, m.name)
        const have = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? (m.valueType === 'StringArray' ? v.split(' ') : [v]) : v === undefined || v === null ? [] : [String(v)]
        if (!have.some((x) => m.values.includes(x))) return false
      }
      if (scopes.length) {
        const raw = c.scope ?? c.scp
        const have = new Set(Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(' ') : [])
        if (!scopes.every((s) => have.has(s))) return false
      }
      return true
    })
  }
  return (req) => checks.every((c) => c(req))
}


