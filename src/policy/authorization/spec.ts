/** `authorization` (SecurityPolicy, Envoy Gateway's Authorization field names) in the IR. */
export interface JwtClaimMatch {
  readonly name: string
  readonly valueType: 'String' | 'StringArray'
  readonly values: readonly string[]
}

export interface AuthorizationRuleSpec {
  readonly name?: string
  readonly action: 'Allow' | 'Deny'
  readonly principal: {
    /** The client (after clientIPDetection) is in one of these. */
    readonly clientCIDRs?: readonly string[]
    /** A JWT verified by the `jwt` feature (provider by name) carries these claims and scopes. */
    readonly jwt?: { readonly provider: string; readonly claims?: readonly JwtClaimMatch[]; readonly scopes?: readonly string[] }
  }
}

export interface AuthorizationSpec {
  readonly defaultAction: 'Allow' | 'Deny'
  readonly rules: readonly AuthorizationRuleSpec[]
  /** How a denied request is answered (Kong's ip-restriction `status`/`message`, as Kong's JSON); default a plain 403. */
  readonly deny?: { readonly status: number; readonly message: string; readonly style: 'kong' }
}

declare module '../kind.ts' {
  interface PolicySpecs {
    authorization: AuthorizationSpec
  }
}
