/**
 * The CustomResourceDefinition of each policy CRD, built from crds.ts and its translator's
 * schema: docker/deploy/00-crd-<plural>.yaml are this, rendered (test/policy/crds.test.ts fails
 * when they are out of date; `UPDATE_CRDS=1 npx bun test test/policy/crds.test.ts` rewrites them).
 */
import { CONDITION_SCHEMA, customResourceDefinition } from './crd-builder.ts'
import { POLICY_CRDS, type PolicyCrd, type PolicyKind } from './crds.ts'
import { toOpenApi } from './schema.ts'
import { TRANSLATORS } from './translators.ts'

/** gateway.networking.k8s.io/v1 PolicyStatus, as Envoy Gateway's policies use it. */
const POLICY_STATUS = {
  type: 'object',
  description: 'Status per ancestor (GEP-713): the Gateway a policy reaches its targets through.',
  required: ['ancestors'],
  properties: {
    ancestors: {
      type: 'array',
      maxItems: 16,
      items: {
        type: 'object',
        required: ['ancestorRef', 'controllerName'],
        properties: {
          ancestorRef: {
            type: 'object',
            required: ['name'],
            properties: {
              group: { type: 'string', default: 'gateway.networking.k8s.io', maxLength: 253 },
              kind: { type: 'string', default: 'Gateway', maxLength: 63, minLength: 1 },
              name: { type: 'string', maxLength: 253, minLength: 1 },
              namespace: { type: 'string', maxLength: 63, minLength: 1 },
              port: { type: 'integer', format: 'int32', maximum: 65535, minimum: 1 },
              sectionName: { type: 'string', maxLength: 253, minLength: 1 },
            },
          },
          controllerName: { type: 'string', maxLength: 253, minLength: 1 },
          conditions: { type: 'array', maxItems: 8, minItems: 1, items: CONDITION_SCHEMA, 'x-kubernetes-list-map-keys': ['type'], 'x-kubernetes-list-type': 'map' },
        },
      },
    },
  },
}

export function crdManifest(crd: PolicyCrd): Record<string, unknown> {
  return customResourceDefinition({
    ...crd,
    description: `${crd.kind}: Envoy Gateway's field names (gateway.envoyproxy.io/v1alpha1), attached with targetRefs (GEP-713). See README "Policies".`,
    spec: toOpenApi(TRANSLATORS[crd.kind as PolicyKind].schema),
    status: POLICY_STATUS,
  })
}

/** File name under docker/deploy/ → manifest. */
export function crdFiles(): Record<string, Record<string, unknown>> {
  return Object.fromEntries(POLICY_CRDS.map((c) => [`00-crd-${c.plural}.yaml`, crdManifest(c)]))
}
