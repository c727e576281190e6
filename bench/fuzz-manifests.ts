/**
 * Seeded mutational fuzzer of manifests through the whole control path (on demand; a short run
 * is test/reliability/fuzz.test.ts):
 *
 *   parse (sources/manifests.ts, as the file source does) → normalise → translate → validate →
 *   compile (HTTP plan, dataplane/snapshot.ts, and L4 plan, dataplane/l4/plan.ts)
 *
 *   npx bun bench/fuzz-manifests.ts                    # seed 1, 2000 cases
 *   npx bun bench/fuzz-manifests.ts --seed 9 --cases 20000
 *
 * Inputs are the golden manifests (test/golden/*.in.yaml), mutated at two levels: as text (byte
 * flips, line deletions and duplications, indentation changes, truncation: the YAML parser must
 * report, never throw) and as objects (fields replaced with junk of the wrong type, huge or
 * hostile strings, numbers out of range, annotations set to nonsense). Nothing may throw; a
 * snapshot that validation accepts must also compile (compile errors are allowed only as
 * rejected snapshots, which the data plane reports instead of applying).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { parseManifests } from '../src/sources/manifests.ts'
import { viewOf } from '../src/store/store.ts'
import { translate } from '../src/translate/index.ts'
import { validateSnapshot } from '../src/ir/validate.ts'
import { compile } from '../src/dataplane/snapshot.ts'
import { compileL4 } from '../src/dataplane/l4/plan.ts'
import { CertificateCache } from '../src/dataplane/l4/tls-contexts.ts'
import { EndpointRegistry } from '../src/dataplane/upstream/registry.ts'
import { rng } from './fuzz-http.ts'

export interface ManifestFuzzReport {
  cases: number
  /** Cases whose YAML no longer parsed (reported as load problems, as the file source would). */
  parseProblems: number
  /** Snapshots validation refused (kept out of the data plane). */
  rejected: number
  /** Snapshots the HTTP compiler refused (the data plane keeps the previous plan). */
  compileRefused: number
  compiled: number
  readonly failures: { seed: number; stage: string; error: string; input: string }[]
}

const GOLDEN = join(import.meta.dir, '../test/golden')

const JUNK: unknown[] = [
  null, 0, -1, 1.5, 1e300, -0, Number.MAX_SAFE_INTEGER + 2, '', ' ', '*', '**', '.', '/', '//', '0s', '-1s', '99999h', 'NaN',
  '[', '(', '(?<', '\\', '\u0000', '\r\n', 'a'.repeat(5000), '*.', '*.*', '..', 'ü.example', '-', '65536', '0',
  [], [null], [[]], {}, { a: 1 }, { name: null }, true, false, '10Mi', '-5Mi', '1Gi', 'five minutes',
  '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
]

/** A fresh copy: mutations must never reach the shared JUNK entries. */
const junk = (r: () => number): unknown => structuredClone(JUNK[Math.floor(r() * JUNK.length)])

const ANNOTATIONS = ['portico.dev/max-body-size', 'portico.dev/stream-idle-timeout', 'konghq.com/strip-path']

function mutateValue(v: unknown, r: () => number, depth: number, rate: number): unknown {
  if (depth > 1 && r() < rate) return junk(r)
  if (Array.isArray(v)) {
    const out = v.map((x) => mutateValue(x, r, depth + 1, rate))
    if (out.length && r() < rate) out.push(out[Math.floor(r() * out.length)]) // a duplicate entry
    if (out.length && r() < rate) out.splice(Math.floor(r() * out.length), 1)
    return out
  }
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) {
      if (depth > 1 && r() < rate / 2) continue // a missing field
      out[k] = mutateValue(x, r, depth + 1, rate)
    }
    return out
  }
  return v
}

function mutateObjects(docs: unknown[], r: () => number): unknown[] {
  const rate = 0.02 + r() * 0.1
  return docs.map((doc) => {
    const out = mutateValue(doc, r, 0, rate) as Record<string, unknown>
    if (out && typeof out === 'object' && r() < 0.15) {
      const metadata = (out.metadata && typeof out.metadata === 'object' ? out.metadata : (out.metadata = {})) as Record<string, unknown>
      const annotations = (metadata.annotations && typeof metadata.annotations === 'object' ? metadata.annotations : (metadata.annotations = {})) as Record<string, unknown>
      annotations[ANNOTATIONS[Math.floor(r() * ANNOTATIONS.length)]!] = junk(r)
    }
    return out
  })
}

function mutateText(text: string, r: () => number): string {
  let lines = text.split('\n')
  const edits = 1 + Math.floor(r() * 4)
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(r() * lines.length)
    switch (Math.floor(r() * 6)) {
      case 0:
        lines.splice(at, 1)
        break
      case 1:
        lines.splice(at, 0, lines[at] ?? '')
        break
      case 2:
        lines[at] = ' ' + (lines[at] ?? '')
        break
      case 3: {
        const line = lines[at] ?? ''
        const pos = Math.floor(r() * (line.length + 1))
        lines[at] = line.slice(0, pos) + String.fromCharCode(Math.floor(r() * 128)) + line.slice(pos + 1)
        break
      }
      case 4:
        lines = lines.slice(0, at)
        break
      default:
        lines[at] = (lines[at] ?? '').replace(/: .*/, ': ' + JSON.stringify(junk(r)))
    }
  }
  return lines.join('\n')
}

const OPTS = { controllerName: 'portico.dev/gateway-controller' }

/** Run one input through every stage; returns the first stage that threw, if any. */
function pipeline(text: string, report: ManifestFuzzReport): { stage: string; error: unknown } | undefined {
  let stage = 'parse'
  try {
    const parsed = parseManifests(text, 'fuzz.yaml')
    if (parsed.problems.length) report.parseProblems++
    stage = 'translate'
    const result = translate(viewOf(parsed.objects, 1), OPTS)
    stage = 'validate'
    const problems = validateSnapshot(result.ir)
    if (problems.length) {
      report.rejected++
      return undefined
    }
    stage = 'compile-l4'
    compileL4(result.ir, new EndpointRegistry(), new CertificateCache())
    stage = 'compile'
    try {
      compile(result.ir, new EndpointRegistry())
      report.compiled++
    } catch (err) {
      // HttpDataplane.apply catches this and keeps the previous plan: a refusal, not a crash.
      // Only an invalid RegExp may get this far; anything else is a bug.
      if (!(err instanceof SyntaxError)) return { stage, error: err }
      report.compileRefused++
    }
    return undefined
  } catch (error) {
    return { stage, error }
  }
}

export function fuzzManifests(seed: number, cases: number): ManifestFuzzReport {
  const inputs = readdirSync(GOLDEN)
    .filter((f) => f.endsWith('.in.yaml'))
    .sort()
    .map((f) => readFileSync(join(GOLDEN, f), 'utf8'))
  const report: ManifestFuzzReport = { cases: 0, parseProblems: 0, rejected: 0, compileRefused: 0, compiled: 0, failures: [] }
  for (let i = 0; i < cases; i++) {
    const caseSeed = seed * 1_000_003 + i
    const r = rng(caseSeed)
    const source = inputs[Math.floor(r() * inputs.length)]!
    let text: string
    if (r() < 0.3) text = mutateText(source, r)
    else {
      const parsed = parseManifests(source, 'golden.yaml')
      const raw = parsed.objects.map((o) => JSON.parse(JSON.stringify(o)) as unknown)
      text = mutateObjects(raw, r).map((d) => stringify(d)).join('---\n')
    }
    report.cases++
    const failed = pipeline(text, report)
    if (failed) {
      const error = failed.error instanceof Error ? (failed.error.stack ?? failed.error.message) : String(failed.error)
      report.failures.push({ seed: caseSeed, stage: failed.stage, error: error.split('\n').slice(0, 4).join(' | '), input: text.slice(0, 2000) })
    }
  }
  return report
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

if (import.meta.main) {
  const seed = Number(arg('--seed') ?? 1)
  const cases = Number(arg('--cases') ?? 2000)
  const started = Date.now()
  const report = fuzzManifests(seed, cases)
  console.log(JSON.stringify({ seed, ...report, failures: report.failures.length, seconds: (Date.now() - started) / 1000 }, null, 2))
  for (const f of report.failures.slice(0, 5)) console.log(JSON.stringify({ seed: f.seed, stage: f.stage, error: f.error }))
  process.exit(report.failures.length === 0 ? 0 : 1)
}
