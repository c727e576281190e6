/** docker/deploy/optional/kong: the Kong CRDs and RBAC match the kinds Portico reads. */
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { KONG_GROUP, KONG_KINDS } from '../../src/kong/kinds.ts'

const dir = join(import.meta.dir, '../../docker/deploy/optional/kong')
const load = (f: string): any[] => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS())

test('a CRD per Kong kind Portico reads, with its scope and the fields translation reads', () => {
  const crds = load('00-crds.yaml')
  expect(crds.map((c) => c.spec.names.kind).sort()).toEqual(KONG_KINDS.map((k) => k.kind).sort())
  for (const k of KONG_KINDS) {
    const crd = crds.find((c) => c.spec.names.kind === k.kind)
    expect(crd.metadata.name).toBe(`${k.plural}.${KONG_GROUP}`)
    expect(crd.spec.scope).toBe(k.namespaced ? 'Namespaced' : 'Cluster')
    const schema = crd.spec.versions[0].schema.openAPIV3Schema
    expect(crd.spec.versions[0].name).toBe('v1')
    if (k.kind === 'KongConsumer') expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['username', 'custom_id', 'credentials']))
    else expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['plugin', 'config', 'configFrom', 'configPatches', 'disabled']))
  }
})

test('RBAC: read every Kong kind, write only KongConsumer status, bound to portico', () => {
  const [role, binding] = load('01-rbac.yaml')
  const allowed = (resource: string, verb: string) => role.rules.some((r: any) => r.apiGroups.includes(KONG_GROUP) && r.resources.includes(resource) && r.verbs.includes(verb))
  for (const k of KONG_KINDS) for (const verb of ['get', 'list', 'watch']) expect(allowed(k.plural, verb)).toBe(true)
  for (const k of KONG_KINDS.filter((k) => 'status' in k)) expect(allowed(`${k.plural}/status`, 'patch')).toBe(true)
  for (const r of role.rules) if (r.verbs.includes('patch')) expect(r.resources.every((x: string) => x.endsWith('/status'))).toBe(true)
  expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'portico', namespace: 'portico-system' }])
  expect(binding.roleRef.name).toBe(role.metadata.name)
})
