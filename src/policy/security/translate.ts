/**
 * SecurityPolicy (Envoy Gateway's api/v1alpha1/securitypolicy_types.go field names): who may
 * call a route. Registered, attached and reported now; the authentication issue fills in its
 * features. Until then every Envoy Gateway field is accepted by the schema and reported as not
 * supported yet, so a SecurityPolicy with any field set is not accepted (and enforces nothing).
 */
import { unsupported } from '../schema.ts'
import { policySpecSchema } from '../targets.ts'
import type { PolicyTranslator } from '../translators.ts'

const UNSUPPORTED = ['apiKeyAuth', 'authorization', 'basicAuth', 'cors', 'csrf', 'extAuth', 'jwt', 'mergeType', 'oidc'] as const

const schema = policySpecSchema(['Gateway', 'HTTPRoute', 'GRPCRoute', 'TCPRoute'], Object.fromEntries(UNSUPPORTED.map((f) => [f, unsupported()])))

export const securityPolicy: PolicyTranslator = {
  kind: 'SecurityPolicy',
  schema,
  targetKinds: ['Gateway', 'HTTPRoute', 'TCPRoute'],
  features: () => [],
}
