/**
 * The typed resource store: one map per kind keyed "Kind/ns/name". Sources write into it;
 * the pipeline reads a frozen `view()` and never the live maps, so translation sees one
 * consistent revision even while a source keeps writing.
 */
import { keyOf, type K8sObject } from './kinds.ts'

/** A consistent, read-only bag of every resource at one revision: the input to translation. */
export interface ResourceView {
  readonly revision: number
  readonly gatewayClasses: readonly K8sObject[]
  readonly gateways: readonly K8sObject[]
  readonly httpRoutes: readonly K8sObject[]
  readonly grpcRoutes: readonly K8sObject[]
  readonly tlsRoutes: readonly K8sObject[]
  readonly tcpRoutes: readonly K8sObject[]
  readonly udpRoutes: readonly K8sObject[]
  readonly referenceGrants: readonly K8sObject[]
  readonly backendTLSPolicies: readonly K8sObject[]
  readonly services: readonly K8sObject[]
  readonly endpointSlices: readonly K8sObject[]
  readonly secrets: readonly K8sObject[]
  readonly configMaps: readonly K8sObject[]
  readonly namespaces: readonly K8sObject[]
}

const FIELD_BY_KIND: Record<string, keyof Omit<ResourceView, 'revision'>> = {
  GatewayClass: 'gatewayClasses',
  Gateway: 'gateways',
  HTTPRoute: 'httpRoutes',
  GRPCRoute: 'grpcRoutes',
  TLSRoute: 'tlsRoutes',
  TCPRoute: 'tcpRoutes',
  UDPRoute: 'udpRoutes',
  ReferenceGrant: 'referenceGrants',
  BackendTLSPolicy: 'backendTLSPolicies',
  Service: 'services',
  EndpointSlice: 'endpointSlices',
  Secret: 'secrets',
  ConfigMap: 'configMaps',
  Namespace: 'namespaces',
}

/** Builds a view from a plain list (tests and golden files use this). */
export function viewOf(objects: readonly K8sObject[], revision = 1): ResourceView {
  const bag: Record<string, K8sObject[]> = {}
  for (const f of Object.values(FIELD_BY_KIND)) bag[f] = []
  for (const o of objects) {
    const field = FIELD_BY_KIND[o.kind]
    if (field) bag[field]!.push(o)
  }
  // deterministic order regardless of load order: translation output must not depend on it
  for (const list of Object.values(bag)) list.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0))
  return Object.freeze({ revision, ...bag }) as unknown as ResourceView
}

export type StoreListener = (revision: number) => void

export class ResourceStore {
  #objects = new Map<string, K8sObject>()
  #revision = 0
  #listeners = new Set<StoreListener>()

  get revision(): number {
    return this.#revision
  }

  /** Inserts or replaces; a no-op (no revision bump) when the object is unchanged. */
  upsert(o: K8sObject): void {
    const key = keyOf(o)
    const prev = this.#objects.get(key)
    if (prev && JSON.stringify(prev) === JSON.stringify(o)) return
    this.#objects.set(key, o)
    this.#bump()
  }

  delete(key: string): void {
    if (this.#objects.delete(key)) this.#bump()
  }

  /** Replaces everything owned by one origin (a file, a watched kind) in a single revision. */
  replaceAll(keys: Iterable<string>, next: readonly K8sObject[]): void {
    let changed = false
    const nextKeys = new Set(next.map(keyOf))
    for (const k of keys) if (!nextKeys.has(k) && this.#objects.delete(k)) changed = true
    for (const o of next) {
      const key = keyOf(o)
      const prev = this.#objects.get(key)
      if (prev && JSON.stringify(prev) === JSON.stringify(o)) continue
      this.#objects.set(key, o)
      changed = true
    }
    if (changed) this.#bump()
  }

  get(key: string): K8sObject | undefined {
    return this.#objects.get(key)
  }

  all(): K8sObject[] {
    return [...this.#objects.values()]
  }

  view(): ResourceView {
    return viewOf(this.all(), this.#revision)
  }

  onChange(fn: StoreListener): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  #bump(): void {
    this.#revision++
    for (const fn of this.#listeners) fn(this.#revision)
  }
}
