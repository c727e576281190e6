/** Loads multi-document manifests (the routes/ folder format) into a ResourceView. */
import { parseAllDocuments } from 'yaml'
import { normalise, type K8sObject } from '../../src/store/kinds.ts'
import { viewOf, type ResourceView } from '../../src/store/store.ts'

export function loadObjects(text: string): K8sObject[] {
  const out: K8sObject[] = []
  for (const doc of parseAllDocuments(text)) {
    const raw = doc.toJSON()
    if (raw === null || raw === undefined) continue
    const r = normalise(raw)
    if (r === null) continue
    if ('problems' in r) throw new Error(`invalid manifest: ${r.problems.join('; ')}`)
    out.push(r.object)
  }
  return out
}

export function loadView(text: string, revision = 1): ResourceView {
  return viewOf(loadObjects(text), revision)
}
