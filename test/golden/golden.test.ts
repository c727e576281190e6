/**
 * Golden translation tests: every `<scenario>.in.yaml` (plain manifests, as in routes/) is
 * translated and compared with `<scenario>.out.yaml` (ir: + status:). Regenerate with
 * `UPDATE_GOLDEN=1 npx bun test test/golden` and review the diff like code.
 */
import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { viewOf } from '../../src/store/store.ts'
import { translate } from '../../src/translate/index.ts'
import { loadObjects } from './load.ts'

const DIR = import.meta.dir
const OPTS = { controllerName: 'portico.dev/gateway-controller' }
const UPDATE = process.env.UPDATE_GOLDEN === '1'

/** PEMs are long and opaque; a digest keeps outputs readable while still pinning the bytes. */
function redactPem(v: unknown): unknown {
  if (typeof v === 'string' && v.startsWith('-----BEGIN')) {
    const kind = v.match(/-----BEGIN ([A-Z ]+)-----/)?.[1] ?? 'PEM'
    return `<${kind} sha256:${createHash('sha256').update(v).digest('hex').slice(0, 16)}>`
  }
  if (Array.isArray(v)) return v.map(redactPem)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactPem(x)]))
  return v
}

export function render(text: string): string {
  const result = translate(viewOf(loadObjects(text), 1), OPTS)
  return stringify(redactPem(result), { lineWidth: 0 })
}

const scenarios = readdirSync(DIR)
  .filter((f) => f.endsWith('.in.yaml'))
  .map((f) => f.slice(0, -'.in.yaml'.length))
  .sort()

describe('golden', () => {
  for (const name of scenarios) {
    test(name, () => {
      const input = readFileSync(join(DIR, `${name}.in.yaml`), 'utf8')
      const actual = render(input)
      const outPath = join(DIR, `${name}.out.yaml`)
      if (UPDATE || !existsSync(outPath)) writeFileSync(outPath, actual)
      expect(actual).toBe(readFileSync(outPath, 'utf8'))
    })
  }
})

describe('determinism', () => {
  test('input order does not change the output', () => {
    for (const name of scenarios) {
      const objects = loadObjects(readFileSync(join(DIR, `${name}.in.yaml`), 'utf8'))
      const a = JSON.stringify(translate(viewOf(objects, 1), OPTS))
      const b = JSON.stringify(translate(viewOf([...objects].reverse(), 1), OPTS))
      expect(b).toBe(a)
    }
  })
})
