/**
 * `policyRejected`: what an invalid policy of a fail-closed kind (SecurityPolicy) contributes to
 * its targets instead of its features, so a route is never served unauthenticated because its
 * policy was rejected (src/policy/attach.ts; the policy's status says why).
 */
export interface PolicyRejectedSpec {
  /** "SecurityPolicy ns/name", for logs only: the answer names nothing. */
  readonly policy: string
}

declare module '../kind.ts' {
  interface PolicySpecs {
    policyRejected: PolicyRejectedSpec
  }
}
