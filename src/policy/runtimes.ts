/**
 * Every policy runtime, one line each: the chain (src/dataplane/http/chain.ts) looks features up
 * here by name. Typed so that a feature declared in PolicySpecs without a runtime fails to
 * typecheck.
 */
import type { PolicyName } from './kind.ts'
import type { PolicyRuntime } from './runtime.ts'
import { clientIpDetection, requestId } from './client-traffic/runtime.ts'
import { compressionRuntime } from './compression/runtime.ts'
import { rateLimitRuntime } from './rate-limit/runtime.ts'
import { policyRejectedRuntime } from './rejected/runtime.ts'
import { apiKeyAuthRuntime } from './auth-api-key/runtime.ts'
import { basicAuthRuntime } from './auth-basic/runtime.ts'
import { jwtRuntime } from './auth-jwt/runtime.ts'
import { authorizationRuntime } from './authorization/runtime.ts'
import { extAuthRuntime } from './ext-auth/runtime.ts'
import { externalAuthFilterRuntime } from './ext-auth/filter.ts'
import { oidcRuntime } from './auth-oidc/runtime.ts'
import { requestBufferRuntime } from './request-buffer/runtime.ts'
import { circuitBreakerRuntime, healthCheckRuntime, loadBalancerRuntime, retryRuntime } from './backend-traffic/runtime.ts'
import { aclRuntime } from './acl/runtime.ts'
import { corsPolicyRuntime } from './cors/runtime.ts'
import { correlationIdRuntime } from './correlation-id/runtime.ts'
import { requestSizeLimitRuntime } from './request-size/runtime.ts'
import { requestTransformRuntime, responseTransformRuntime } from './transformer/runtime.ts'
import { perConsumerRuntime } from './per-consumer/runtime.ts'
import { requireHttpsRuntime } from './require-https/runtime.ts'
import { jwtCredentialsRuntime } from './auth-jwt/credentials.ts'
import { corsRuntime, requestHeaderModifierRuntime, requestMirrorRuntime, responseHeaderModifierRuntime, urlRewriteRuntime } from '../dataplane/http/filters/runtimes.ts'

export const RUNTIMES: { readonly [K in PolicyName]: PolicyRuntime<K> } = {
  clientIPDetection: clientIpDetection,
  requestID: requestId,
  compression: compressionRuntime,
  rateLimit: rateLimitRuntime,
  // SecurityPolicy (an invalid one makes its targets answer 500: policyRejected)
  policyRejected: policyRejectedRuntime,
  apiKeyAuth: apiKeyAuthRuntime,
  basicAuth: basicAuthRuntime,
  jwt: jwtRuntime,
  authorization: authorizationRuntime,
  extAuth: extAuthRuntime,
  oidc: oidcRuntime,
  loadBalancer: loadBalancerRuntime,
  healthCheck: healthCheckRuntime,
  circuitBreaker: circuitBreakerRuntime,
  retry: retryRuntime,
  requestBuffer: requestBufferRuntime,
  // HTTPRoute filters (core), in the transform phase in manifest order.
  RequestHeaderModifier: requestHeaderModifierRuntime,
  ResponseHeaderModifier: responseHeaderModifierRuntime,
  URLRewrite: urlRewriteRuntime,
  RequestMirror: requestMirrorRuntime,
  CORS: corsRuntime,
  ExternalAuth: externalAuthFilterRuntime,
  // Kong's plugins without an earlier runtime (src/kong translates KongPlugins onto all of these)
  acl: aclRuntime,
  cors: corsPolicyRuntime,
  correlationId: correlationIdRuntime,
  requestSizeLimit: requestSizeLimitRuntime,
  requestTransform: requestTransformRuntime,
  responseTransform: responseTransformRuntime,
  perConsumer: perConsumerRuntime(() => RUNTIMES),
  requireHttps: requireHttpsRuntime,
  jwtCredentials: jwtCredentialsRuntime,
}
