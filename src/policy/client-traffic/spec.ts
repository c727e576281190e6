/**
 * The request-level features ClientTrafficPolicy contributes to the chain (the
 * connection-level ones travel as ConnectionSettings on ports, src/policy/kind.ts).
 * Field names are Envoy Gateway's (api/v1alpha1/clienttrafficpolicy_types.go).
 */

/** `spec.clientIPDetection`: where the client address that policies, logs and hashing see comes from. */
export interface ClientIpDetectionSpec {
  /** The address `numTrustedHops` from the right of X-Forwarded-For (1 = the hop our peer added). */
  readonly xForwardedFor?: { readonly numTrustedHops?: number; readonly trustedCIDRs?: readonly string[] }
  /** A header carrying the client address (e.g. X-Real-IP); `failClosed` answers 403 when it is missing or invalid. */
  readonly customHeader?: { readonly name: string; readonly failClosed: boolean }
}

/** `spec.headers.requestID`: what happens to X-Request-Id on the way upstream. */
export interface RequestIdSpec {
  readonly action: 'PreserveOrGenerate' | 'Preserve' | 'Generate' | 'Disable'
}

declare module '../kind.ts' {
  interface PolicySpecs {
    clientIPDetection: ClientIpDetectionSpec
    requestID: RequestIdSpec
  }
}
