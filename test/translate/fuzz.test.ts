/**
 * translate() must be total: take every golden input, replace random fields below the
 * shape-checked top level with junk (seeded, so failures reproduce) and require that
 * translation returns without throwing.
 */
import { expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { viewOf } from '../../src/store/store.ts'
import { translate } from '../../src/translate/index.ts'
import type { K8sObject } from '../../src/store/kinds.ts'
import { loadObjects } from '../golden/load.ts'

const GOLDEN = join(import.meta.dir, '../golden')
const JUNK: unknown[] = [null, 0, -1, 1e9, '', 'x', '*', [], [null], {}, { a: 1 }, true, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']

function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

function mutate(v: unknown, rand: () => number, depth: number): unknown {
  if (depth > 0 && rand() < 0.08) return JUNK[Math.floor(rand() * JUNK.length)]
  if (Array.isArray(v)) return v.map((x) => mutate(x, rand, depth + 1))
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mutate(x, rand, depth + 1)]))
  return v
}

test('translate never throws on mangled specs', () => {
  const inputs = readdirSync(GOLDEN).filter((f) => f.endsWith('.in.yaml'))
  let runs = 0
  for (const f of inputs) {
    const objects = loadObjects(readFileSync(join(GOLDEN, f), 'utf8'))
    for (let seed = 1; seed <= 20; seed++) {
      const rand = rng(seed * 7919 + f.length)
      // keep apiVersion/kind/metadata (the store's shape checks guarantee those); mangle the rest
      const mangled = objects.map((o) => ({ ...o, ...(mutate({ spec: o.spec, data: o.data, endpoints: o.endpoints, ports: o.ports }, rand, 0) as object) }) as K8sObject)
      expect(() => translate(viewOf(mangled), { controllerName: 'portico.dev/gateway-controller' })).not.toThrow()
      runs++
    }
  }
  expect(runs).toBeGreaterThan(100)
})
