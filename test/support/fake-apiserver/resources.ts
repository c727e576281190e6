/**
 * The resource types the stand-in serves, described the way an API server's discovery does.
 * Tests can serve a subset (e.g. no GRPCRoute, TLSRoute only in v1alpha2) to exercise discovery.
 */

export interface ResourceType {
  readonly group: string
  /** Served versions, preferred first. Objects are stored once and read back in any of them. */
  readonly versions: readonly string[]
  readonly kind: string
  readonly plural: string
  readonly singular: string
  readonly namespaced: boolean
  /** Has a /status subresource: writes to the main resource ignore status, /status writes change only status. */
  readonly status: boolean
  /** metadata.generation is maintained (bumped on every non-metadata, non-status change). */
  readonly generation: boolean
  /** Core types accept updates without metadata.resourceVersion; custom resources reject them (422). */
  readonly unconditionalUpdate: boolean
  readonly shortNames?: readonly string[]
  readonly categories?: readonly string[]
}

import { POLICY_CRDS, POLICY_GROUP, POLICY_VERSION } from '../../../src/policy/crds.ts'
import { KONG_GROUP, KONG_KINDS } from '../../../src/kong/kinds.ts'

const GW = 'gateway.networking.k8s.io'

const gateway = (kind: string, plural: string, versions: string[], extra: Partial<ResourceType> = {}): ResourceType => ({
  group: GW,
  versions,
  kind,
  plural,
  singular: kind.toLowerCase(),
  namespaced: true,
  status: true,
  generation: true,
  unconditionalUpdate: false,
  categories: ['gateway-api'],
  ...extra,
})

const core = (kind: string, plural: string, extra: Partial<ResourceType> = {}): ResourceType => ({
  group: '',
  versions: ['v1'],
  kind,
  plural,
  singular: kind.toLowerCase(),
  namespaced: true,
  status: false,
  generation: false,
  unconditionalUpdate: true,
  ...extra,
})

/** What a cluster with the Gateway API v1.2 experimental channel (and Portico's CRDs) installed serves. */
export const DEFAULT_RESOURCES: readonly ResourceType[] = [
  core('Namespace', 'namespaces', { namespaced: false, status: true, shortNames: ['ns'] }),
  core('Service', 'services', { status: true, shortNames: ['svc'] }),
  core('Secret', 'secrets'),
  core('ConfigMap', 'configmaps', { shortNames: ['cm'] }),
  core('Endpoints', 'endpoints', { shortNames: ['ep'] }),
  { ...core('EndpointSlice', 'endpointslices'), group: 'discovery.k8s.io' },
  { ...core('Lease', 'leases'), group: 'coordination.k8s.io' },
  gateway('GatewayClass', 'gatewayclasses', ['v1', 'v1beta1'], { namespaced: false, shortNames: ['gc'] }),
  gateway('Gateway', 'gateways', ['v1', 'v1beta1'], { shortNames: ['gtw'] }),
  gateway('ListenerSet', 'listenersets', ['v1'], { shortNames: ['lset'] }),
  gateway('HTTPRoute', 'httproutes', ['v1', 'v1beta1']),
  gateway('GRPCRoute', 'grpcroutes', ['v1']),
  gateway('ReferenceGrant', 'referencegrants', ['v1beta1'], { status: false, shortNames: ['refgrant'] }),
  gateway('TLSRoute', 'tlsroutes', ['v1alpha3', 'v1alpha2']),
  gateway('TCPRoute', 'tcproutes', ['v1alpha2']),
  gateway('UDPRoute', 'udproutes', ['v1alpha2']),
  gateway('BackendTLSPolicy', 'backendtlspolicies', ['v1alpha3'], { shortNames: ['btlspolicy'] }),
  // Portico's own CRDs, as docker/deploy/10-crd-*.yaml installs them
  ...POLICY_CRDS.map((c) => gateway(c.kind, c.plural, [POLICY_VERSION], { group: POLICY_GROUP, singular: c.singular, shortNames: c.shortNames, categories: ['portico'] })),
  gateway('Composite', 'composites', [POLICY_VERSION], { group: POLICY_GROUP, singular: 'composite', shortNames: ['comp'], categories: ['portico'] }),
  // Kong Ingress Controller's kinds, as docker/deploy/optional/kong installs them
  ...KONG_KINDS.map((k) => gateway(k.kind, k.plural, ['v1'], { group: KONG_GROUP, namespaced: k.namespaced, status: 'status' in k, categories: ['kong-ingress-controller'] })),
]

export const storageKey = (t: ResourceType) => `${t.group}/${t.plural}`
export const apiVersionOf = (group: string, version: string) => (group ? `${group}/${version}` : version)
