/**
 * Every policy CRD's translator, one line each (the CRDs themselves are listed in crds.ts).
 * A translator knows its spec schema (the CRD YAML is generated from it) and turns a valid spec
 * into features; attach.ts does the rest (targets, precedence, status) the same way for all.
 * Translators never load runtime code: translate/ stays free of the data plane.
 */
import type { ConnectionSettings, PolicyIr, PolicyName, PolicySpecs } from './kind.ts'
import type { PolicyKind } from './crds.ts'
import type { ObjectSchema } from './schema.ts'
import { backendTrafficPolicy } from './backend-traffic/translate.ts'
import { clientTrafficPolicy } from './client-traffic/translate.ts'
import { securityPolicy } from './security/translate.ts'

/**
 * One feature of a policy: the unit of precedence (a more specific policy's feature replaces a
 * less specific one's of the same name) and of conflict reporting.
 *  - request:    a chain entry (PolicyIr) for HttpListener.policies or HttpRule.policies
 *  - connection: listener port settings; `http` applies on HTTP/HTTPS ports, `l4` on TCP/TLS ports
 *  - l4route:    settings of an L4 route (BackendTrafficPolicy proxyProtocol to the backend)
 */
export type Feature =
  | { readonly scope: 'request'; readonly name: PolicyName; readonly spec: PolicySpecs[PolicyName] }
  | { readonly scope: 'connection'; readonly name: string; readonly http?: ConnectionSettings; readonly l4?: ConnectionSettings }
  | { readonly scope: 'l4route'; readonly name: string; readonly proxyProtocol: 'V1' | 'V2' }

export interface PolicyTranslator {
  readonly kind: PolicyKind
  /** What `spec` must look like (targets included). Unknown fields are errors. */
  readonly schema: ObjectSchema
  /** Target kinds (group gateway.networking.k8s.io) Portico can attach this policy to. */
  readonly targetKinds: readonly string[]
  /**
   * The features of a spec that passed the schema and has no unsupported field. May still
   * find a problem the schema cannot express (returned as a string: the policy is Invalid).
   */
  features(spec: Record<string, unknown>): readonly Feature[] | string
}

export const TRANSLATORS: { readonly [K in PolicyKind]: PolicyTranslator } = {
  ClientTrafficPolicy: clientTrafficPolicy,
  BackendTrafficPolicy: backendTrafficPolicy,
  SecurityPolicy: securityPolicy,
}

/** The PolicyIr of a request feature, with its state key / metric label. */
export function policyIr(kind: string, namespace: string, name: string, f: Extract<Feature, { scope: 'request' }>): PolicyIr {
  return { name: f.name, id: `${kind.toLowerCase()}/${namespace}/${name}#${f.name}`, spec: f.spec } as PolicyIr
}
