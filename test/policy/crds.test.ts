/**
 * The policy CRDs: docker/deploy/00-crd-*.yaml are generated from the translators' schemas
 * (regenerate with `UPDATE_CRDS=1 npx bun test test/policy/crds.test.ts`), are structural
 * (every node typed or explicitly preserving unknown fields), and every Portico policy example
 * in the README and routes/ passes both the CRD schema (a small OpenAPI v3 checker) and the
 * translator's own validation.
 */
import { describe, expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments, stringify } from 'yaml'
import { crdFiles } from '../../src/policy/crd-manifest.ts'
import { POLICY_CRDS, POLICY_GROUP } from '../../src/policy/crds.ts'
import { validate } from '../../src/policy/schema.ts'
import { TRANSLATORS } from '../../src/policy/translators.ts'

const root = join(import.meta.dir, '../..')
const deployDir = join(root, 'docker/deploy')
const HEADER = '# Generated from src/policy (crd-manifest.ts and each translator\'s schema); do not edit.\n# Regenerate: UPDATE_CRDS=1 npx bun test test/policy/crds.test.ts\n'

describe('policy CRD manifests', () => {
  for (const [file, manifest] of Object.entries(crdFiles())) {
    test(`${file} is up to date`, () => {
      const text = HEADER + stringify(manifest, { lineWidth: 0 })
      const path = join(deployDir, file)
      if (process.env.UPDATE_CRDS === '1' || !existsSync(path)) writeFileSync(path, text)
      expect(readFileSync(path, 'utf8')).toBe(text)
    })
  }

  test('one CRD per policy kind, namespaced, with a status subresource and the short names', () => {
    const crds = readdirSync(deployDir)
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => parseAllDocuments(readFileSync(join(deployDir, f), 'utf8')).map((d) => d.toJS()))
      // the Composite CRD (a backendRef kind, not a policy) is checked by test/composite/crd.test.ts
      .filter((d) => d?.kind === 'CustomResourceDefinition' && d.spec.names.kind !== 'Composite')
    expect(crds.map((c) => c.spec.names.kind).sort()).toEqual(POLICY_CRDS.map((c) => c.kind).sort())
    for (const c of crds) {
      expect(c.spec.group).toBe(POLICY_GROUP)
      expect(c.spec.scope).toBe('Namespaced')
      expect(c.spec.versions[0].subresources).toEqual({ status: {} })
      expect(c.metadata.name).toBe(`${c.spec.names.plural}.${POLICY_GROUP}`)
      expect(structuralProblems(c.spec.versions[0].schema.openAPIV3Schema, 'openAPIV3Schema')).toEqual([])
    }
    expect(crds.map((c) => c.spec.names.shortNames[0]).sort()).toEqual(['btp', 'ctp', 'sp'])
  })

  test('every policy example in the README and routes/ is valid for the CRD and for Portico', () => {
    const crds = new Map(Object.values(crdFiles()).map((c: any) => [c.spec.names.kind, c.spec.versions[0].schema.openAPIV3Schema]))
    const examples = [...readmeExamples(), ...routesExamples()].filter((o) => typeof o?.apiVersion === 'string' && o.apiVersion.startsWith(`${POLICY_GROUP}/`) && o.kind in TRANSLATORS)
    expect(examples.length).toBeGreaterThan(0)
    for (const o of examples) {
      expect(openApiProblems(crds.get(o.kind), o, o.kind)).toEqual([])
      const p = validate(TRANSLATORS[o.kind as keyof typeof TRANSLATORS].schema, o.spec, 'spec')
      expect([...p.errors, ...p.unsupported]).toEqual([])
    }
  })

  test('the checker finds what the API server would reject', () => {
    const schema: any = crdFiles()['00-crd-clienttrafficpolicies.yaml']!
    const s = schema.spec.versions[0].schema.openAPIV3Schema
    const bad = { apiVersion: 'gateway.portico.dev/v1alpha1', kind: 'ClientTrafficPolicy', metadata: {}, spec: { targetRefs: [{ kind: 'Gateway', name: 'x' }], headers: { requestID: 'Sometimes' }, timeout: { http: { idleTimeout: '5 seconds' } } } }
    expect(openApiProblems(s, bad, 'x')).toEqual([
      'x.spec.targetRefs[0]: group is required',
      'x.spec.headers.requestID: "Sometimes" not in enum',
      'x.spec.timeout.http.idleTimeout: "5 seconds" does not match pattern',
    ])
  })
})

function readmeExamples(): any[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => parseAllDocuments(m[1]!).map((d) => d.toJS()))
}

function routesExamples(): any[] {
  const dir = join(root, 'routes')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS()))
}

/** Structural schema rules (apiextensions.k8s.io/v1): every node has a type, or preserves unknown fields. */
function structuralProblems(s: any, at: string): string[] {
  if (s['x-kubernetes-preserve-unknown-fields'] === true && s.type === undefined) return []
  // int-or-string (quantities): no type, anyOf integer/string, as the API server allows.
  if (s['x-kubernetes-int-or-string'] === true && s.type === undefined) return []
  if (typeof s.type !== 'string') return [`${at}: no type`]
  const out: string[] = []
  for (const [k, v] of Object.entries(s.properties ?? {})) out.push(...structuralProblems(v, `${at}.${k}`))
  if (s.items) out.push(...structuralProblems(s.items, `${at}[]`))
  return out
}

/** A small OpenAPI v3 checker: types, required, enum, pattern, min/max, and no unknown fields (as kubectl --validate=strict). */
function openApiProblems(s: any, v: any, at: string): string[] {
  if (!s) return [`${at}: no schema`]
  if (s['x-kubernetes-preserve-unknown-fields'] === true && s.type === undefined) return []
  if (s['x-kubernetes-int-or-string'] === true && s.type === undefined) {
    if (typeof v === 'number') return Number.isInteger(v) ? [] : [`${at}: not an integer or string`]
    if (typeof v !== 'string') return [`${at}: not an integer or string`]
    return s.pattern && !new RegExp(s.pattern).test(v) ? [`${at}: does not match ${s.pattern}`] : []
  }
  const out: string[] = []
  switch (s.type) {
    case 'object':
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return [`${at}: not an object`]
      for (const r of s.required ?? []) if (v[r] === undefined) out.push(`${at}: ${r} is required`)
      if (s.properties && Object.keys(s.properties).length)
        for (const [k, x] of Object.entries(v)) {
          if (!(k in s.properties)) out.push(`${at}: unknown field ${k}`)
          else out.push(...openApiProblems(s.properties[k], x, `${at}.${k}`))
        }
      break
    case 'array':
      if (!Array.isArray(v)) return [`${at}: not a list`]
      if (s.maxItems !== undefined && v.length > s.maxItems) out.push(`${at}: too many items`)
      if (s.minItems !== undefined && v.length < s.minItems) out.push(`${at}: too few items`)
      v.forEach((x, i) => out.push(...openApiProblems(s.items, x, `${at}[${i}]`)))
      break
    case 'string':
      if (typeof v !== 'string') return [`${at}: not a string`]
      if (s.enum && !s.enum.includes(v)) out.push(`${at}: ${JSON.stringify(v)} not in enum`)
      if (s.pattern && !new RegExp(s.pattern).test(v)) out.push(`${at}: ${JSON.stringify(v)} does not match pattern`)
      break
    case 'integer':
      if (!Number.isInteger(v)) return [`${at}: not an integer`]
      if (s.minimum !== undefined && v < s.minimum) out.push(`${at}: below minimum`)
      break
    case 'boolean':
      if (typeof v !== 'boolean') out.push(`${at}: not a boolean`)
      break
  }
  return out
}
