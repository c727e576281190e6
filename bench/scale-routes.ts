/** The routes of the scale benchmarks (bench/scale.ts, profile-rebuild.ts, profile-memory.ts). */
import { gatewayManifests, prefixRoute } from './lib.ts'

/**
 * The Gateway, its class and the upstream Service; with `policies`, also a ClientTrafficPolicy
 * on the Gateway (client IP from X-Forwarded-For, request IDs, an idle timeout).
 */
export function scaleBase(gatewayPort: number, upstreamPort: number, policies: boolean, idleTimeout = '60s'): string {
  if (!policies) return gatewayManifests(gatewayPort, upstreamPort)
  return `${gatewayManifests(gatewayPort, upstreamPort)}---
apiVersion: gateway.portico.dev/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: bench }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: bench }]
  clientIPDetection: { xForwardedFor: { numTrustedHops: 1 } }
  headers: { requestID: Generate }
  timeout: { http: { idleTimeout: ${idleTimeout} } }
`
}

/**
 * One HTTPRoute with one path prefix; with `policies`, also a BackendTrafficPolicy (retries) and
 * a SecurityPolicy (authorization allowing loopback) targeting it, so requests from the
 * benchmark still get 200.
 */
export function scaleRoute(name: string, prefix: string, policies: boolean, numRetries = 2): string {
  if (!policies) return prefixRoute(name, prefix)
  const target = `targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${name} }]`
  return `${prefixRoute(name, prefix)}---
apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name} }
spec:
  ${target}
  retry: { numRetries: ${numRetries}, retryOn: { triggers: [gateway-error, reset] } }
---
apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name} }
spec:
  ${target}
  authorization: { defaultAction: Deny, rules: [{ name: loopback, action: Allow, principal: { clientCIDRs: [127.0.0.0/8] } }] }
`
}
