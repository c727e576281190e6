/** The routes of the scale benchmarks (bench/scale.ts, profile-rebuild.ts, profile-memory.ts). */
import { prefixRoute } from './lib.ts'

/**
 * One HTTPRoute with one path prefix; with `policies`, also a BackendTrafficPolicy (retries) and
 * a SecurityPolicy (authorization allowing loopback) targeting it, so requests from the
 * benchmark still get 200.
 */
export function scaleRoute(name: string, prefix: string, policies: boolean): string {
  if (!policies) return prefixRoute(name, prefix)
  const target = `targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${name} }]`
  return `${prefixRoute(name, prefix)}---
apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name} }
spec:
  ${target}
  retry: { numRetries: 2, retryOn: { triggers: [gateway-error, reset] } }
---
apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name} }
spec:
  ${target}
  authorization: { defaultAction: Deny, rules: [{ name: loopback, action: Allow, principal: { clientCIDRs: [127.0.0.0/8] } }] }
`
}
