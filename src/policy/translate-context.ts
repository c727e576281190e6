/**
 * The TranslateContext a policy translator reads referenced objects through (translators.ts):
 * Secrets and ConfigMaps by name, Services as pools. Cross-namespace references need a
 * ReferenceGrant in the target's namespace naming the policy kind (group gateway.portico.dev).
 *
 * Services resolve through the route translation's Backends (same checks, same pool keys), with
 * the effects recorded: the caller adds them to the snapshot's pool usage once per world.
 */
import { POLICY_GROUP } from './crds.ts'
import type { TranslateContext } from './translators.ts'
import type { BackendEffect, Backends } from '../translate/backends.ts'
import { isReferenceAllowed } from '../translate/reference-grant.ts'
import { secretValue } from '../translate/tls.ts'
import { keyOf, objectKey, type K8sObject } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import { sameObject, sameObjects } from '../translate/unchanged.ts'

/**
 * What one policy's translation read besides its spec, so that its result can be kept when the
 * configuration around it changes but none of this did (attach.ts, across Translator worlds).
 */
export interface ContextReads {
  /** Secrets and ConfigMaps looked up, with what was found (undefined: not found). */
  readonly objects: { readonly kind: 'Secret' | 'ConfigMap'; readonly key: string; readonly found: K8sObject | undefined }[]
  /** Set when a reference crossed namespaces: the ReferenceGrants the answer depended on. */
  grants: readonly K8sObject[] | undefined
  /** A Service was resolved: the result depends on Services, EndpointSlices, BackendTLSPolicies. */
  services: boolean
}

/** Whether a translation that read `reads` would read the same from `after`. */
export function sameReads(reads: ContextReads, after: ResourceView): boolean {
  if (reads.services) return false
  if (reads.grants && !sameObjects(reads.grants, after.referenceGrants)) return false
  for (const r of reads.objects) {
    const now = findByKey(r.kind === 'Secret' ? after.secrets : after.configMaps, r.key)
    if (now === r.found) continue
    if (!now || !r.found || !sameObject(now, r.found)) return false
  }
  return true
}

export function translateContext(view: ResourceView, kind: string, namespace: string, backends: Backends | undefined, effects: BackendEffect[], reads?: ContextReads): TranslateContext {
  const allowed = (targetKind: string, ns: string, name: string) => {
    if (reads && ns !== namespace) reads.grants = view.referenceGrants
    return isReferenceAllowed({ group: POLICY_GROUP, kind, namespace }, { group: '', kind: targetKind, namespace: ns, name }, view.referenceGrants)
  }
  const lookup = (list: readonly K8sObject[], targetKind: 'Secret' | 'ConfigMap', name: string, ns: string | undefined): K8sObject | string => {
    const where = ns ?? namespace
    if (!allowed(targetKind, where, name)) return `${targetKind} ${where}/${name} is in another namespace and no ReferenceGrant allows it`
    const key = objectKey(targetKind, where, name)
    const o = findByKey(list, key)
    reads?.objects.push({ kind: targetKind, key, found: o })
    return o ?? `${targetKind} ${where}/${name} not found`
  }
  return {
    namespace,
    secret(name, ns) {
      const o = lookup(view.secrets, 'Secret', name, ns)
      if (typeof o === 'string') return o
      const out: Record<string, string> = {}
      for (const k of new Set([...Object.keys(o.data ?? {}), ...Object.keys(o.stringData ?? {})])) {
        const v = secretValue(o, k)
        if (v !== undefined) out[k] = v
      }
      return out
    },
    configMap(name, ns) {
      const o = lookup(view.configMaps, 'ConfigMap', name, ns)
      if (typeof o === 'string') return o
      const out: Record<string, string> = {}
      for (const [k, v] of Object.entries(o.data ?? {})) if (typeof v === 'string') out[k] = v
      return out
    },
    service(ref) {
      if (reads) reads.services = true
      if (!backends) return 'backend references are not available here'
      const ns = typeof ref.namespace === 'string' ? ref.namespace : namespace
      const name = typeof ref.name === 'string' ? ref.name : ''
      if (!allowed('Service', ns, name)) return `Service ${ns}/${name} is in another namespace and no ReferenceGrant allows it`
      // the grant is checked above for the policy; resolve as a referrer in the Service's namespace
      const referrer = { apiVersion: `${POLICY_GROUP}/v1alpha1`, kind, metadata: { name: 'policy', namespace: ns } } as K8sObject
      let result: ReturnType<Backends['resolve']> | undefined
      effects.push(...backends.recording(() => (result = backends.resolve(referrer, { ...ref, namespace: ns }, 'http', []))))
      return 'pool' in result! ? { pool: result.pool } : result!.problem.message
    },
  }
}

/** Binary search in a view list (views are sorted by key: viewOf and ResourceStore.view both); a miss scans, for hand-made unsorted views. */
export function findByKey(list: readonly K8sObject[], key: string): K8sObject | undefined {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (keyOf(list[mid]!) < key) lo = mid + 1
    else hi = mid
  }
  if (lo < list.length && keyOf(list[lo]!) === key) return list[lo]
  // a hand-made (unsorted) view: fall back to a scan
  return list.find((o) => keyOf(o) === key)
}
