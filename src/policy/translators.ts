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
  | { readonly scope: 'request'; readonly name: PolicyName; readonly spec: PolicySpecs[PolicyName]; readonly pools?: readonly string[] }
  | { readonly scope: 'connection'; readonly name: string; readonly http?: ConnectionSettings; readonly l4?: ConnectionSettings }
  | { readonly scope: 'l4route'; readonly name: string; readonly proxyProtocol: 'V1' | 'V2' }

/**
 * What a translator may read besides the spec: referenced Secrets, ConfigMaps and Services, in
 * the policy's namespace or across namespaces when a ReferenceGrant allows it. What a
 * translation read is recorded (ContextReads): attach.ts translates a policy again only when
 * the policy or something it read changed (always when it resolved a Service).
 * Lookups return the data, or why it cannot be used (a string for the policy's status).
 */
export interface TranslateContext {
  /** The policy's namespace (the default for references). */
  readonly namespace: string
  /** A Secret's data, keys to decoded values (`data` base64, `stringData` plain). */
  secret(name: string, namespace?: string): Readonly<Record<string, string>> | string
  /** A ConfigMap's data. */
  configMap(name: string, namespace?: string): Readonly<Record<string, string>> | string
  /** A Service backendRef (name, namespace, port) → the key of a pool added to the snapshot (PolicyIr.pools). */
  service(ref: Record<string, unknown>): { readonly pool: string } | string
}

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
  features(spec: Record<string, unknown>, ctx: TranslateContext): readonly Feature[] | string
  /**
   * An invalid policy of this kind (schema, unsupported field, missing Secret) makes its targets
   * answer 500 rather than serve as if it were absent (SecurityPolicy: a route must never be
   * served unauthenticated because its policy was rejected; Envoy Gateway does the same).
   */
  readonly failClosed?: boolean
}

export const TRANSLATORS: { readonly [K in PolicyKind]: PolicyTranslator } = {
  ClientTrafficPolicy: clientTrafficPolicy,
  BackendTrafficPolicy: backendTrafficPolicy,
  SecurityPolicy: securityPolicy,
}

/** The PolicyIr of a request feature, with its state key / metric label. */
export function policyIr(kind: string, namespace: string, name: string, f: Extract<Feature, { scope: 'request' }>): PolicyIr {
  return { name: f.name, id: `${kind.toLowerCase()}/${namespace}/${name}#${f.name}`, spec: f.spec, ...(f.pools?.length ? { pools: f.pools } : {}) } as PolicyIr
}
