/**
 * The shape every Portico CustomResourceDefinition shares (policies and Composite): one namespaced
 * kind in gateway.portico.dev/v1alpha1 with a status subresource. Kept free of translator imports
 * so translate/ can build its own kinds' CRDs without loading the policy registry.
 */
import { POLICY_GROUP, POLICY_VERSION } from './crds.ts'

/** metav1.Condition as the Gateway API CRDs validate it. */
export const CONDITION_SCHEMA = {
  type: 'object',
  required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
  properties: {
    lastTransitionTime: { type: 'string', format: 'date-time' },
    message: { type: 'string', maxLength: 32768 },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    reason: { type: 'string', maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    type: { type: 'string', maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' },
  },
}

export interface CrdShape {
  readonly kind: string
  readonly plural: string
  readonly singular: string
  readonly shortNames: readonly string[]
  readonly description: string
  /** OpenAPI v3 of `spec` (schema.ts toOpenApi). */
  readonly spec: unknown
  /** OpenAPI v3 of `status`. */
  readonly status: unknown
}

export function customResourceDefinition(crd: CrdShape): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${crd.plural}.${POLICY_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'portico' } },
    spec: {
      group: POLICY_GROUP,
      names: { kind: crd.kind, listKind: `${crd.kind}List`, plural: crd.plural, singular: crd.singular, shortNames: [...crd.shortNames], categories: ['portico'] },
      scope: 'Namespaced',
      versions: [
        {
          name: POLICY_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: crd.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: crd.spec,
                status: crd.status,
              },
            },
          },
        },
      ],
    },
  }
}
