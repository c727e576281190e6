/**
 * Every policy runtime, one line each: the chain (src/dataplane/http/chain.ts) looks features up
 * here by name. Typed so that a feature declared in PolicySpecs without a runtime fails to
 * typecheck.
 */
import type { PolicyName } from './kind.ts'
import type { PolicyRuntime } from './runtime.ts'
import { clientIpDetection, requestId } from './client-traffic/runtime.ts'
import { compressionRuntime } from './compression/runtime.ts'
import { circuitBreakerRuntime, healthCheckRuntime, loadBalancerRuntime, retryRuntime } from './backend-traffic/runtime.ts'
import { corsRuntime, requestHeaderModifierRuntime, requestMirrorRuntime, responseHeaderModifierRuntime, urlRewriteRuntime } from '../dataplane/http/filters/runtimes.ts'

export const RUNTIMES: { readonly [K in PolicyName]: PolicyRuntime<K> } = {
  clientIPDetection: clientIpDetection,
  requestID: requestId,
  compression: compressionRuntime,
  loadBalancer: loadBalancerRuntime,
  healthCheck: healthCheckRuntime,
  circuitBreaker: circuitBreakerRuntime,
  retry: retryRuntime,
  // HTTPRoute filters (core), in the transform phase in manifest order.
  RequestHeaderModifier: requestHeaderModifierRuntime,
  ResponseHeaderModifier: responseHeaderModifierRuntime,
  URLRewrite: urlRewriteRuntime,
  RequestMirror: requestMirrorRuntime,
  CORS: corsRuntime,
}
