/**
 * Kong-style manifests (as Kong's docs write them, with only the GatewayClass controllerName
 * changed) translated to Portico's IR and status. Same format as test/golden:
 * `<scenario>.in.yaml` → `<scenario>.out.yaml`; regenerate with
 * `UPDATE_GOLDEN=1 npx bun test test/kong/golden.test.ts` and review the diff like code.
 */
import { describe, expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { viewOf } from '../../src/store/store.ts'
import { translate } from '../../src/translate/index.ts'
import { Translator } from '../../src/translate/translator.ts'
import { loadObjects } from '../golden/load.ts'

const DIR = join(import.meta.dir, 'golden')
const OPTS = { controllerName: 'portico.dev/gateway-controller' }
const UPDATE = process.env.UPDATE_GOLDEN === '1'

const scenarios = readdirSync(DIR)
  .filter((f) => f.endsWith('.in.yaml'))
  .map((f) => f.slice(0, -'.in.yaml'.length))
  .sort()

describe('kong golden', () => {
  for (const name of scenarios) {
    test(name, () => {
      const objects = loadObjects(readFileSync(join(DIR, `${name}.in.yaml`), 'utf8'))
      const result = translate(viewOf(objects, 1), OPTS)
      // IR pieces are shared between rules (translate/share.ts): written out in full, not as YAML aliases
      const actual = stringify(result, { lineWidth: 0, aliasDuplicateObjects: false })
      const outPath = join(DIR, `${name}.out.yaml`)
      if (UPDATE || !existsSync(outPath)) writeFileSync(outPath, actual)
      expect(actual).toBe(readFileSync(outPath, 'utf8'))
      // the incremental translator agrees, and input order does not matter
      expect(JSON.stringify(new Translator(OPTS).translate(viewOf(objects, 1)))).toBe(JSON.stringify(result))
      expect(JSON.stringify(translate(viewOf([...objects].reverse(), 1), OPTS))).toBe(JSON.stringify(result))
    })
  }
})
