/**
 * GEP-713 policy targets, as Envoy Gateway spells them: `targetRefs` (or the older singular
 * `targetRef`) of LocalPolicyTargetReferenceWithSectionName, always in the policy's namespace.
 * `targetSelectors` is accepted by the schema and reported as not supported yet.
 */
import { array, object, string, unsupported, type ObjectSchema, type Rule, type Schema } from './schema.ts'

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io'

/** One target as written (group/kind/name checked by the schema). */
export interface TargetRef {
  readonly group: string
  readonly kind: string
  readonly name: string
  readonly sectionName?: string
}

const SECTION = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'

function targetRefSchema(kinds: readonly string[]): ObjectSchema {
  return object(
    {
      group: string({ enum: [GATEWAY_API_GROUP], description: 'API group of the target.' }),
      kind: string({ enum: kinds, description: 'Kind of the target.' }),
      name: string({ minLength: 1, maxLength: 253, description: 'Name of the target, in the policy namespace.' }),
      sectionName: string({ minLength: 1, maxLength: 253, pattern: SECTION, description: 'A listener (Gateway) or rule (route) name within the target.' }),
    },
    { required: ['group', 'kind', 'name'] },
  )
}

const ONE_WAY_TO_TARGET: Rule = {
  cel: '(has(self.targetRef) && !has(self.targetRefs)) || (!has(self.targetRef) && has(self.targetRefs)) || (has(self.targetSelectors) && self.targetSelectors.size() > 0)',
  message: 'either targetRef or targetRefs must be used',
  check: (v) => (v.targetRef !== undefined) !== (v.targetRefs !== undefined) || (Array.isArray(v.targetSelectors) && v.targetSelectors.length > 0),
}

/** The spec schema of a policy kind: targets (of `kinds`) plus its own fields. */
export function policySpecSchema(kinds: readonly string[], fields: Record<string, Schema>, rules: readonly Rule[] = []): ObjectSchema {
  return object(
    {
      targetRef: { ...targetRefSchema(kinds), description: 'Deprecated: use targetRefs.' },
      targetRefs: array(targetRefSchema(kinds), { maxItems: 16, description: 'The resources this policy attaches to (GEP-713), in its namespace.' }),
      targetSelectors: unsupported('Label selectors for targets: not supported by Portico yet.'),
      ...fields,
    },
    { rules: [ONE_WAY_TO_TARGET, ...rules] },
  )
}

/** The targets of a schema-valid spec (targetRef folded into targetRefs), duplicates removed. */
export function targetRefsOf(spec: Record<string, unknown>): TargetRef[] {
  const raw = spec.targetRef !== undefined ? [spec.targetRef] : Array.isArray(spec.targetRefs) ? spec.targetRefs : []
  const seen = new Set<string>()
  const out: TargetRef[] = []
  for (const r of raw as Record<string, unknown>[]) {
    if (!r || typeof r !== 'object' || typeof r.name !== 'string' || typeof r.kind !== 'string') continue
    const ref: TargetRef = { group: typeof r.group === 'string' ? r.group : GATEWAY_API_GROUP, kind: r.kind, name: r.name, ...(typeof r.sectionName === 'string' ? { sectionName: r.sectionName } : {}) }
    const k = `${ref.kind}/${ref.name}/${ref.sectionName ?? ''}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push(ref)
  }
  return out
}
