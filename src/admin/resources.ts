/**
 * The resource view: every loaded object in Kubernetes shape with its computed `.status`.
 * Objects whose latest version failed to load are shown as their last good version, with
 * the load error surfaced as a condition, so `kubectl get -o yaml`-style tooling sees it.
 * Each object enters the view through objectView (redact.ts): a Secret is shown without its data.
 */
import { keyOf, type K8sObject } from '../store/kinds.ts'
import type { LoadProblem } from '../sources/source.ts'
import { objectView, type SecretView } from './redact.ts'

export function resourcesView(objects: readonly K8sObject[], statusOf: (key: string) => Record<string, unknown> | undefined, problems: readonly LoadProblem[]): (K8sObject | SecretView)[] {
  const byKey = new Map<string, LoadProblem>()
  for (const p of problems) if (p.objectKey) byKey.set(p.objectKey, p)
  return objects
    .map((o) => {
      const key = keyOf(o)
      const status = statusOf(key)
      const problem = byKey.get(key)
      const view = objectView(o)
      if (status) view.status = status
      else delete view.status
      if (problem) view.status = withLoadError((view.status as Record<string, unknown> | undefined) ?? {}, problem, o.metadata.generation)
      return { key, view }
    })
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((e) => e.view)
}

function withLoadError(status: Record<string, any>, p: LoadProblem, generation: number | undefined): Record<string, unknown> {
  const cond = {
    type: 'Accepted',
    status: 'False',
    reason: 'Invalid',
    message: `latest manifest rejected (${p.origin}${p.line ? `:${p.line}` : ''}): ${p.message}; serving the last good version`,
    observedGeneration: generation,
  }
  const replace = (conds: any[] | undefined) => [cond, ...(conds ?? []).filter((c) => c.type !== 'Accepted')]
  const out: Record<string, unknown> = { ...status, conditions: replace(status.conditions) }
  if (Array.isArray(status.parents)) out.parents = status.parents.map((p: any) => ({ ...p, conditions: replace(p.conditions) }))
  return out
}
