/**
 * `policyRejected`: the targets of an invalid fail-closed policy answer 500 (as Envoy Gateway
 * does for an invalid SecurityPolicy), first thing in the chain. Head-only: stays direct.
 */
import type { PolicyRuntime, Verdict } from '../runtime.ts'

const REPLY: Verdict = { status: 500, body: 'route unavailable: its security policy is invalid\n' }

export const policyRejectedRuntime: PolicyRuntime<'policyRejected'> = {
  name: 'policyRejected',
  phase: 'client',
  order: -1000,
  compile() {
    return { headOnly: true, onRequest: () => REPLY }
  },
}
