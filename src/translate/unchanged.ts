/**
 * When an input counts as unchanged for the incremental Translator. Objects are immutable (the
 * store replaces, never mutates), so the same object is unchanged; so is an equal one that
 * differs only in what translation never reads.
 */
import type { K8sObject } from '../store/kinds.ts'

/** Same length and, at every index, the same object or one translation cannot tell from it (sameObject). */
export function sameObjects(a: readonly K8sObject[], b: readonly K8sObject[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (!sameObject(a[i]!, b[i]!)) return false
  return true
}

/**
 * Whether translation would read the same thing from both objects: the same object (inputs are
 * immutable), or equal but for status and resourceVersion, which translation never reads and
 * our own status writes change (in Kubernetes mode every rebuild that changes a Gateway's
 * attachedRoutes comes back as a new Gateway object).
 */
export function sameObject(a: K8sObject, b: K8sObject): boolean {
  return a === b || contentOf(a) === contentOf(b)
}

const contents = new WeakMap<K8sObject, string>()

function contentOf(o: K8sObject): string {
  let content = contents.get(o)
  if (content === undefined) {
    const { status: _status, metadata, ...rest } = o
    const { resourceVersion: _version, ...meta } = metadata
    content = JSON.stringify([rest, meta])
    contents.set(o, content)
  }
  return content
}
