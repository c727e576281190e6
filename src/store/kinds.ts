/**
 * The resource kinds Portico reads, and the cheap shape checks that keep a malformed object
 * from ever reaching translation. Translation still defends itself (it never throws on user
 * input), but a clear "spec.listeners must be a list" at load time is a better error message.
 */

import { POLICY_CRDS, POLICY_GROUP } from '../policy/crds.ts'
import { KONG_KINDS } from '../kong/kinds.ts'

export interface ObjectMeta {
  name: string
  namespace?: string
  generation?: number
  resourceVersion?: string
  creationTimestamp?: string
  uid?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

/** Any Kubernetes object, as loaded. `spec`/`data` stay untyped until translation reads them. */
export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: ObjectMeta
  spec?: any
  data?: Record<string, string>
  stringData?: Record<string, string>
  type?: string
  status?: any
  // EndpointSlice keeps its payload at the top level
  addressType?: string
  endpoints?: any[]
  ports?: any[]
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io'

/**
 * Every kind Portico reads, registered once: the store's lists and views, the file source,
 * the Kubernetes watcher (discovery), the status writer and RBAC all derive from this table.
 *  - view:   the ResourceView field holding its objects
 *  - role:   what translation does with it. 'world' kinds are read by every route (a change is a
 *            full rebuild), 'route' kinds are translated one by one, 'endpoints' only fill pools,
 *            'unread' are watched but not translated yet
 *  - status: whether we write its status, and the list in it several controllers share
 *            ('own': the whole status is ours)
 */
export interface ResourceKind {
  readonly kind: string
  readonly group: string
  readonly namespaced: boolean
  readonly view: string
  readonly plural: string
  readonly role: 'world' | 'route' | 'endpoints' | 'unread'
  readonly status?: 'own' | 'parents' | 'ancestors'
}

const gw = <K extends string, V extends string, R extends ResourceKind['role']>(kind: K, view: V, plural: string, role: R, status?: ResourceKind['status']) =>
  ({ kind, group: GATEWAY_GROUP, namespaced: true, view, plural, role, ...(status ? { status } : {}) }) as const

export const RESOURCE_KINDS = [
  { ...gw('GatewayClass', 'gatewayClasses', 'gatewayclasses', 'world', 'own'), namespaced: false },
  gw('Gateway', 'gateways', 'gateways', 'world', 'own'),
  gw('ListenerSet', 'listenerSets', 'listenersets', 'world', 'own'),
  gw('HTTPRoute', 'httpRoutes', 'httproutes', 'route', 'parents'),
  gw('GRPCRoute', 'grpcRoutes', 'grpcroutes', 'route', 'parents'),
  gw('TLSRoute', 'tlsRoutes', 'tlsroutes', 'route', 'parents'),
  gw('TCPRoute', 'tcpRoutes', 'tcproutes', 'route', 'parents'),
  gw('UDPRoute', 'udpRoutes', 'udproutes', 'route', 'parents'),
  gw('ReferenceGrant', 'referenceGrants', 'referencegrants', 'world'),
  gw('BackendTLSPolicy', 'backendTLSPolicies', 'backendtlspolicies', 'world', 'ancestors'),
  ...POLICY_CRDS.map((c) => ({ kind: c.kind, group: POLICY_GROUP, namespaced: true, view: c.view, plural: c.plural, role: 'world', status: 'ancestors' }) as const),
  // a backendRef kind (src/translate/composite.ts): members called together, answers merged
  { kind: 'Composite', group: POLICY_GROUP, namespaced: true, view: 'composites', plural: 'composites', role: 'world', status: 'own' },
  { kind: 'Service', group: '', namespaced: true, view: 'services', plural: 'services', role: 'world' },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', namespaced: true, view: 'endpointSlices', plural: 'endpointslices', role: 'endpoints' },
  { kind: 'Secret', group: '', namespaced: true, view: 'secrets', plural: 'secrets', role: 'world' },
  { kind: 'ConfigMap', group: '', namespaced: true, view: 'configMaps', plural: 'configmaps', role: 'world' },
  { kind: 'Namespace', group: '', namespaced: false, view: 'namespaces', plural: 'namespaces', role: 'world' },
  // Kong Ingress Controller's KongPlugin, KongClusterPlugin, KongConsumer (src/kong)
  ...KONG_KINDS,
] as const satisfies readonly ResourceKind[]

/** A ResourceView field name. */
export type ViewField = (typeof RESOURCE_KINDS)[number]['view']

/** Kind → the API group we accept it from (several versions of each are fine). */
export const KINDS: Readonly<Record<string, ResourceKind>> = Object.fromEntries(RESOURCE_KINDS.map((k) => [k.kind, k]))

export type KindName = (typeof RESOURCE_KINDS)[number]['kind']

/** Key of an object in the store: "Kind/namespace/name" (namespace empty for cluster-scoped). */
export function objectKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`
}

export function keyOf(o: K8sObject): string {
  return objectKey(o.kind, o.metadata.namespace, o.metadata.name)
}

function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/')
  return i < 0 ? '' : apiVersion.slice(0, i)
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/**
 * Returns the object normalised (namespace defaulted to "default" for namespaced kinds)
 * or a list of problems. Unknown kinds return `null`: they are ignored, not errors, so a
 * folder can hold Deployments or other manifests next to ours.
 */
export function normalise(raw: unknown): { object: K8sObject } | { problems: string[] } | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { problems: ['document is not an object'] }
  const o = raw as Record<string, any>
  if (typeof o.kind !== 'string' || typeof o.apiVersion !== 'string') return { problems: ['apiVersion and kind are required'] }
  const info = KINDS[o.kind]
  if (!info || groupOf(o.apiVersion) !== info.group) return null
  const problems: string[] = []
  const md = o.metadata
  if (md === null || typeof md !== 'object') return { problems: [`${o.kind}: metadata is required`] }
  if (typeof md.name !== 'string' || !md.name) problems.push(`${o.kind}: metadata.name is required`)
  else if (md.name.length > 253 || !DNS_SUBDOMAIN.test(md.name)) problems.push(`${o.kind} ${md.name}: metadata.name must be a DNS subdomain`)
  if (md.namespace !== undefined && (typeof md.namespace !== 'string' || !DNS_LABEL.test(md.namespace)))
    problems.push(`${o.kind} ${md.name}: metadata.namespace must be a DNS label`)
  for (const field of ['labels', 'annotations'] as const) {
    const v = md[field]
    if (v !== undefined && (v === null || typeof v !== 'object' || Array.isArray(v))) problems.push(`${o.kind} ${md.name}: metadata.${field} must be a map`)
  }
  problems.push(...shapeProblems(o))
  if (problems.length) return { problems }
  const metadata: ObjectMeta = { ...md, name: md.name }
  if (info.namespaced) metadata.namespace = md.namespace || 'default'
  else delete metadata.namespace
  return { object: { ...(o as K8sObject), metadata } }
}

const isList = (v: unknown) => v === undefined || Array.isArray(v)
const isMap = (v: unknown) => v === undefined || (v !== null && typeof v === 'object' && !Array.isArray(v))

/** Structural checks per kind: the fields translation iterates over have the right JSON type. */
function shapeProblems(o: Record<string, any>): string[] {
  const p: string[] = []
  const who = `${o.kind} ${o.metadata?.name}`
  const spec = o.spec
  switch (o.kind) {
    case 'GatewayClass':
      if (!isMap(spec) || typeof spec?.controllerName !== 'string') p.push(`${who}: spec.controllerName is required`)
      break
    case 'Gateway':
      if (!isMap(spec) || spec === undefined) p.push(`${who}: spec is required`)
      else {
        if (typeof spec.gatewayClassName !== 'string') p.push(`${who}: spec.gatewayClassName is required`)
        if (!Array.isArray(spec.listeners) || spec.listeners.length === 0) p.push(`${who}: spec.listeners must be a non-empty list`)
        else
          spec.listeners.forEach((l: any, i: number) => {
            if (!isMap(l) || l === undefined) return p.push(`${who}: spec.listeners[${i}] must be an object`)
            if (typeof l.name !== 'string') p.push(`${who}: spec.listeners[${i}].name is required`)
            if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) p.push(`${who}: spec.listeners[${i}].port must be 1-65535`)
            if (typeof l.protocol !== 'string') p.push(`${who}: spec.listeners[${i}].protocol is required`)
          })
      }
      break
    case 'ListenerSet':
      if (!isMap(spec) || spec === undefined) p.push(`${who}: spec is required`)
      else {
        if (!isMap(spec.parentRef) || typeof spec.parentRef?.name !== 'string') p.push(`${who}: spec.parentRef.name is required`)
        if (!Array.isArray(spec.listeners) || spec.listeners.length === 0) p.push(`${who}: spec.listeners must be a non-empty list`)
        else
          spec.listeners.forEach((l: any, i: number) => {
            if (!isMap(l) || l === undefined) return p.push(`${who}: spec.listeners[${i}] must be an object`)
            if (typeof l.name !== 'string') p.push(`${who}: spec.listeners[${i}].name is required`)
            if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) p.push(`${who}: spec.listeners[${i}].port must be 1-65535`)
            if (typeof l.protocol !== 'string') p.push(`${who}: spec.listeners[${i}].protocol is required`)
          })
      }
      break
    case 'HTTPRoute':
    case 'GRPCRoute':
    case 'TLSRoute':
    case 'TCPRoute':
    case 'UDPRoute':
      if (!isMap(spec)) p.push(`${who}: spec must be an object`)
      else if (spec) {
        if (!isList(spec.parentRefs)) p.push(`${who}: spec.parentRefs must be a list`)
        if (!isList(spec.hostnames)) p.push(`${who}: spec.hostnames must be a list`)
        if (!isList(spec.rules)) p.push(`${who}: spec.rules must be a list`)
        else (spec.rules ?? []).forEach((r: any, i: number) => {
          if (!isMap(r) || r === undefined) return p.push(`${who}: spec.rules[${i}] must be an object`)
          for (const f of ['matches', 'filters', 'backendRefs'] as const) if (!isList(r[f])) p.push(`${who}: spec.rules[${i}].${f} must be a list`)
        })
      }
      break
    case 'ReferenceGrant':
      if (!isMap(spec) || !Array.isArray(spec?.from) || !Array.isArray(spec?.to)) p.push(`${who}: spec.from and spec.to must be lists`)
      break
    case 'Service':
      if (!isMap(spec) || !isList(spec?.ports)) p.push(`${who}: spec.ports must be a list`)
      break
    case 'EndpointSlice':
      if (!isList(o.endpoints) || !isList(o.ports)) p.push(`${who}: endpoints and ports must be lists`)
      break
    case 'Secret':
    case 'ConfigMap':
      if (!isMap(o.data) || !isMap(o.stringData)) p.push(`${who}: data must be a map`)
      break
    // Policy CRDs are not checked here: their translators (src/policy/translators.ts) validate
    // them, so that a bad policy reaches the store and its own status says what is wrong.
  }
  return p
}
