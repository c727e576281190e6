/**
 * Runtimes of the backend features: nothing runs per request. The features are read at compile
 * time (src/dataplane/upstream/variants.ts) and become the settings of the rule's pool variants;
 * their chain entries are head-only no-ops, so a rule keeps the front's direct path.
 */
import type { CompiledPolicy, PolicyRuntime } from '../runtime.ts'
import './spec.ts'

const NOTHING: CompiledPolicy = { headOnly: true }

export const loadBalancerRuntime: PolicyRuntime<'loadBalancer'> = { name: 'loadBalancer', phase: 'upstream', order: 0, compile: () => NOTHING }
export const healthCheckRuntime: PolicyRuntime<'healthCheck'> = { name: 'healthCheck', phase: 'upstream', order: 1, compile: () => NOTHING }
export const circuitBreakerRuntime: PolicyRuntime<'circuitBreaker'> = { name: 'circuitBreaker', phase: 'upstream', order: 2, compile: () => NOTHING }
export const retryRuntime: PolicyRuntime<'retry'> = { name: 'retry', phase: 'upstream', order: 3, compile: () => NOTHING }
