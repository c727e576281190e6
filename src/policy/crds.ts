/**
 * Portico's own policy CRDs (group gateway.portico.dev, version v1alpha1), as data: the store,
 * the Kubernetes watcher, the status writer, the stand-in API server, RBAC and the CRD YAML all
 * read this one list (through src/store/kinds.ts RESOURCE_KINDS), so a new CRD is one entry here
 * plus its translator in translators.ts. Field names follow Envoy Gateway's gateway.envoyproxy.io
 * v1alpha1 kinds of the same name, so a policy moves between the two by changing `apiVersion`.
 */

export const POLICY_GROUP = 'gateway.portico.dev'
export const POLICY_VERSION = 'v1alpha1'

export interface PolicyCrd {
  readonly kind: string
  /** The ResourceView field holding its objects. */
  readonly view: string
  readonly plural: string
  readonly singular: string
  readonly shortNames: readonly string[]
}

export const POLICY_CRDS = [
  { kind: 'ClientTrafficPolicy', view: 'clientTrafficPolicies', plural: 'clienttrafficpolicies', singular: 'clienttrafficpolicy', shortNames: ['ctp'] },
  { kind: 'BackendTrafficPolicy', view: 'backendTrafficPolicies', plural: 'backendtrafficpolicies', singular: 'backendtrafficpolicy', shortNames: ['btp'] },
  { kind: 'SecurityPolicy', view: 'securityPolicies', plural: 'securitypolicies', singular: 'securitypolicy', shortNames: ['sp'] },
] as const satisfies readonly PolicyCrd[]

export type PolicyKind = (typeof POLICY_CRDS)[number]['kind']
export type PolicyViewField = (typeof POLICY_CRDS)[number]['view']
