/**
 * ReferenceGrant: a reference across namespaces is allowed only when a grant in the target's
 * namespace lists the referrer (group, kind, namespace) in `from` and the target (group, kind,
 * optional name) in `to`. Same-namespace references never need one.
 */
import type { K8sObject } from '../store/kinds.ts'
import { objs, str } from './util.ts'

export interface RefFrom {
  readonly group: string
  readonly kind: string
  readonly namespace: string
}

export interface RefTo {
  readonly group: string
  readonly kind: string
  readonly namespace: string
  readonly name: string
}

export function isReferenceAllowed(from: RefFrom, to: RefTo, grants: readonly K8sObject[]): boolean {
  if (from.namespace === to.namespace) return true
  for (const g of grants) {
    if (g.metadata.namespace !== to.namespace) continue
    const fromOk = objs(g.spec?.from).some(
      (f) => (str(f.group) ?? '') === from.group && str(f.kind) === from.kind && str(f.namespace) === from.namespace,
    )
    if (!fromOk) continue
    const toOk = objs(g.spec?.to).some((t) => {
      const name = str(t.name)
      return (str(t.group) ?? '') === to.group && str(t.kind) === to.kind && (name === undefined || name === '' || name === to.name)
    })
    if (toOk) return true
  }
  return false
}
