/**
 * The backend features BackendTrafficPolicy contributes to a rule's chain (Envoy Gateway's
 * api/v1alpha1 field names, resolved with every default filled in). They act on how the rule's
 * backends are called, not on the request: the data plane folds them into a *pool variant* per
 * (Service port, settings) at compile time (src/dataplane/upstream/variants.ts), so routes
 * sharing the Service without the policy keep the shared pool and pay nothing.
 */
import type { CircuitBreakerPolicy, HealthCheckPolicy, HttpRetry, LoadBalancerPolicy, RetryBudget } from '../../ir/types.ts'

/** `spec.retry`: the rule's retries (used where the HTTPRoute rule sets no `retry` of its own), and the pool's retry budget. */
export interface RetrySpec {
  readonly retry: HttpRetry
  readonly budget?: RetryBudget
}

declare module '../kind.ts' {
  interface PolicySpecs {
    loadBalancer: LoadBalancerPolicy
    healthCheck: HealthCheckPolicy
    circuitBreaker: CircuitBreakerPolicy
    retry: RetrySpec
  }
}

/** The chain feature names that configure backends (read by the pool variants, never run per request). */
export const BACKEND_FEATURES = ['loadBalancer', 'healthCheck', 'circuitBreaker', 'retry'] as const
