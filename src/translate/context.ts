/**
 * Lookup tables over one ResourceView, built once per translation so every resolver can find
 * a Service, Secret or grant by name without scanning lists.
 */
import type { K8sObject } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import type { TranslateOptions } from './types.ts'
import { str } from './util.ts'

const nsName = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`

function index(objects: readonly K8sObject[]): Map<string, K8sObject> {
  const m = new Map<string, K8sObject>()
  for (const o of objects) m.set(nsName(o.metadata.namespace, o.metadata.name), o)
  return m
}

export class Context {
  readonly services: Map<string, K8sObject>
  readonly secrets: Map<string, K8sObject>
  readonly configMaps: Map<string, K8sObject>
  readonly namespaces: Map<string, K8sObject>
  readonly gateways: Map<string, K8sObject>
  /** EndpointSlices grouped by "<ns>/<service>" (label kubernetes.io/service-name). */
  readonly slicesByService = new Map<string, K8sObject[]>()

  constructor(
    readonly view: ResourceView,
    readonly opts: TranslateOptions,
  ) {
    this.services = index(view.services)
    this.secrets = index(view.secrets)
    this.configMaps = index(view.configMaps)
    this.namespaces = index(view.namespaces)
    this.gateways = index(view.gateways)
    for (const s of view.endpointSlices) {
      const svc = str(s.metadata.labels?.['kubernetes.io/service-name'])
      if (!svc) continue
      const key = nsName(s.metadata.namespace, svc)
      const arr = this.slicesByService.get(key) ?? []
      arr.push(s)
      this.slicesByService.set(key, arr)
    }
  }

  service(ns: string, name: string) {
    return this.services.get(nsName(ns, name))
  }
  secret(ns: string, name: string) {
    return this.secrets.get(nsName(ns, name))
  }
  configMap(ns: string, name: string) {
    return this.configMaps.get(nsName(ns, name))
  }
  gateway(ns: string, name: string) {
    return this.gateways.get(nsName(ns, name))
  }
  slices(ns: string, service: string): readonly K8sObject[] {
    return this.slicesByService.get(nsName(ns, service)) ?? []
  }

  /** Labels of a namespace; one without a Namespace object still has kubernetes.io/metadata.name. */
  namespaceLabels(ns: string): Record<string, string> {
    const o = this.namespaces.get(nsName(undefined, ns))
    const labels: Record<string, string> = {}
    for (const [k, v] of Object.entries(o?.metadata.labels ?? {})) if (typeof v === 'string') labels[k] = v
    labels['kubernetes.io/metadata.name'] = ns
    return labels
  }
}

/** metadata.generation, when the source stamped one (conditions then carry it as observedGeneration). */
export const generationOf = (o: K8sObject): number | undefined => (typeof o.metadata.generation === 'number' ? o.metadata.generation : undefined)
export const nsOf = (o: K8sObject): string => o.metadata.namespace ?? 'default'
