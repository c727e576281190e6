/**
 * The Composite CRD: docker/deploy/00-crd-composites.yaml is generated from the translator's
 * schema (regenerate with `UPDATE_CRDS=1 npx bun test test/composite/crd.test.ts`), and every
 * Composite example in the README is valid for Portico.
 */
import { expect, test } from 'bun:test'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments, stringify } from 'yaml'
import { COMPOSITE_SCHEMA, compositeCrd } from '../../src/translate/composite.ts'
import { validate } from '../../src/policy/schema.ts'

const root = join(import.meta.dir, '../..')
const HEADER = "# Generated from src/translate/composite.ts (compositeCrd and COMPOSITE_SCHEMA); do not edit.\n# Regenerate: UPDATE_CRDS=1 npx bun test test/composite/crd.test.ts\n"

test('00-crd-composites.yaml is up to date', () => {
  const text = HEADER + stringify(compositeCrd(), { lineWidth: 0 })
  const path = join(root, 'docker/deploy/00-crd-composites.yaml')
  if (process.env.UPDATE_CRDS === '1' || !existsSync(path)) writeFileSync(path, text)
  expect(readFileSync(path, 'utf8')).toBe(text)
})

test('the mapping field is a free-keyed map in the CRD, the rest structural', () => {
  const spec: any = (compositeCrd() as any).spec.versions[0].schema.openAPIV3Schema.properties.spec
  const member = spec.properties.members.items
  expect(member.properties.mapping).toEqual({ description: 'Top-level renames: {total: amount}.', type: 'object', additionalProperties: { type: 'string', minLength: 1 } })
  expect(member.required).toEqual(['backendRef', 'path'])
  expect(member['x-kubernetes-validations'][0].message).toBe('at most one of allow, deny may be set')
})

test('every Composite example in the README is valid', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const docs = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => parseAllDocuments(m[1]!).map((d) => d.toJS()))
  const composites = docs.filter((d) => d?.kind === 'Composite')
  expect(composites.length).toBeGreaterThan(1)
  for (const c of composites) expect(validate(COMPOSITE_SCHEMA, c.spec, 'spec').errors).toEqual([])
})
