/**
 * Parses manifest text (multi-document YAML or JSON, `kind: List` included) into normalised
 * objects and per-document problems with line numbers. Pure: used by the file source and tests.
 */
import YAML, { LineCounter } from 'yaml'
import { keyOf, normalise, objectKey, type K8sObject } from '../store/kinds.ts'
import type { LoadProblem } from './source.ts'

export interface ParsedManifests {
  /** Not to be changed: with a memo, the next parse's `change.after` is this very array. */
  readonly objects: readonly K8sObject[]
  readonly problems: readonly LoadProblem[]
  /**
   * With a memo, when this parse and the previous one were both clean (no problems, one object
   * per key): what changed, by object identity, so the store can apply an edit among 10,000
   * objects without walking all of them. `after` is the previous parse's `objects` array: a sink
   * uses the change only if that is exactly what it last applied for the origin.
   */
  readonly change?: ManifestChange
}

export interface ManifestChange {
  readonly after: readonly K8sObject[]
  readonly removed: readonly K8sObject[]
  readonly added: readonly K8sObject[]
}

/**
 * What one piece of a stream (see documentChunks) parsed to. Problem lines are relative to the
 * piece (1 = its first line), so an unchanged piece keeps its result wherever it moves.
 */
interface ChunkResult {
  readonly objects: readonly K8sObject[]
  /** keyOf() of each object, worked out once per piece. */
  readonly keys: readonly string[]
  readonly problems: readonly LoadProblem[]
}

/** One origin's previous parse: its text cut into pieces, in order, with what each parsed to. */
interface LastParse {
  readonly text: string
  /** Offset of each piece's text. */
  readonly starts: number[]
  /** End (exclusive) of each piece's text: where the separator line after it starts, or the text's end. */
  readonly ends: number[]
  readonly results: ChunkResult[]
  readonly objects: K8sObject[]
  /**
   * No problems and one object per key, so `objects` is the pieces' objects in order and
   * `firstObject[i]` is the index of piece i's first object there; `byKey` holds every object.
   */
  readonly clean: boolean
  readonly firstObject: number[]
  readonly byKey: Map<string, K8sObject> | undefined
}

/**
 * An origin's previous parse, so the next one re-parses only what changed. Editing one route in a
 * file of thousands: the common prefix and suffix of the old and new text are found by comparing
 * blocks (native string compares), the pieces inside them are taken over as they were (the same
 * objects, which the store and the incremental translator recognise without comparing them),
 * and only the pieces in between are cut and looked at again, where a piece whose text was among
 * the old ones in between (a moved document) keeps its result too. A full parse of 10,000
 * documents takes ~1 s; walking 10,000 pieces by text, ~13 ms; this, well under 1 ms.
 */
export class ManifestMemo {
  last: LastParse | undefined
}

export function parseManifests(text: string, origin: string, memo?: ManifestMemo): ParsedManifests {
  const last = memo?.last
  const pieces = last ? incrementalPieces(last, text, origin) : undefined
  const next = pieces ? (pieces.clean ? pieces.clean : assemble(text, pieces.starts, pieces.ends, pieces.results)) : fullParse(text, origin)
  if (memo) memo.last = next
  const problems = next.clean ? [] : problemsOf(text, next)
  return pieces?.change ? { objects: next.objects, problems, change: pieces.change } : { objects: next.objects, problems }
}

/** Every piece parsed on its own (the same text parsed once). */
function fullParse(text: string, origin: string): LastParse {
  const starts: number[] = []
  const ends: number[] = []
  const results: ChunkResult[] = []
  const seen = new Map<string, ChunkResult>()
  const strings = new Map<string, string>()
  for (const chunk of documentChunks(text)) {
    let result = seen.get(chunk.text)
    if (!result) seen.set(chunk.text, (result = parseChunk(chunk.text, origin, strings)))
    starts.push(chunk.start)
    ends.push(chunk.start + chunk.text.length)
    results.push(result)
  }
  return assemble(text, starts, ends, results)
}

/**
 * The objects of the pieces in order; duplicates inside one origin: the last one wins (as
 * `kubectl apply` of the file would), at the place of the first.
 */
function assemble(text: string, starts: number[], ends: number[], results: ChunkResult[]): LastParse {
  const byKey = new Map<string, K8sObject>()
  const firstObject: number[] = []
  let count = 0
  let problems = false
  for (const result of results) {
    firstObject.push(count)
    count += result.objects.length
    if (result.problems.length) problems = true
    for (let i = 0; i < result.objects.length; i++) byKey.set(result.keys[i]!, result.objects[i]!)
  }
  const clean = !problems && byKey.size === count
  return { text, starts, ends, results, objects: [...byKey.values()], clean, firstObject, byKey: clean ? byKey : undefined }
}

/** The problems of a parse, each at its line in the whole text. */
function problemsOf(text: string, parse: LastParse): LoadProblem[] {
  const problems: LoadProblem[] = []
  const lineOf = lineCounter(text)
  for (let i = 0; i < parse.results.length; i++) {
    const result = parse.results[i]!
    if (result.problems.length === 0) continue
    const firstLine = lineOf(parse.starts[i]!)
    for (const p of result.problems) problems.push({ ...p, line: firstLine - 1 + (p.line ?? 1) })
  }
  return problems
}

/**
 * The pieces of `text` worked out from the previous parse (see ManifestMemo), and when both
 * parses are clean, the new parse and the change; undefined when the text cannot be cut that way
 * (then it is parsed whole).
 */
function incrementalPieces(last: LastParse, text: string, origin: string): { starts: number[]; ends: number[]; results: ChunkResult[]; clean?: LastParse; change?: ManifestChange } | undefined {
  const old = last.text
  const n = last.starts.length
  const prefix = commonPrefix(old, text)
  const suffix = commonSuffix(old, text, Math.min(old.length, text.length) - prefix)
  const delta = text.length - old.length
  // Pieces before the first difference, with the separator line after them: the same bytes,
  // and the character after the separator too (the regex's `$` looks at it).
  let kept = 0
  while (kept < n - 1 && last.starts[kept + 1]! < prefix) kept++
  // Pieces after the last difference, with the separator line before them and the character
  // before that line (the regex's `^` looks at it).
  let tail = n
  while (tail - 1 > kept && tail - 1 >= 1 && last.ends[tail - 2]! - 1 >= old.length - suffix) tail--
  const from = kept === 0 ? 0 : last.starts[kept]!
  // where the separator before the first tail piece is in the new text (none: to the end)
  const until = tail < n ? last.ends[tail - 1]! + delta : undefined
  const middle = middlePieces(text, from, until)
  if (!middle) return undefined
  const oldByText = new Map<string, ChunkResult>()
  const strings = new Map<string, string>()
  for (let i = kept; i < tail; i++) oldByText.set(old.slice(last.starts[i]!, last.ends[i]!), last.results[i]!)
  const results = last.results.slice(0, kept)
  const starts = last.starts.slice(0, kept)
  const ends = last.ends.slice(0, kept)
  for (const piece of middle) {
    let result = oldByText.get(piece.text)
    if (!result) oldByText.set(piece.text, (result = parseChunk(piece.text, origin, strings)))
    results.push(result)
    starts.push(piece.start)
    ends.push(piece.start + piece.text.length)
  }
  for (let i = tail; i < n; i++) {
    results.push(last.results[i]!)
    starts.push(last.starts[i]! + delta)
    ends.push(last.ends[i]! + delta)
  }
  const pieces = { starts, ends, results }
  if (!last.clean) return pieces
  // Both clean: the objects are the old ones around the new middle; only its keys are checked.
  const oldMiddle = last.results.slice(kept, tail)
  const newMiddle = results.slice(kept, kept + middle.length)
  if (newMiddle.some((r) => r.problems.length > 0)) return pieces
  const byKey = last.byKey!
  const removed: K8sObject[] = []
  const added: K8sObject[] = []
  const oldObjects = new Set<K8sObject>()
  for (const r of oldMiddle) for (const o of r.objects) oldObjects.add(o)
  const middleObjects: K8sObject[] = []
  for (const r of newMiddle) for (const o of r.objects) middleObjects.push(o)
  const newObjects = new Set(middleObjects)
  for (const r of oldMiddle)
    r.objects.forEach((o, i) => {
      byKey.delete(r.keys[i]!)
      if (!newObjects.has(o)) removed.push(o)
    })
  for (const r of newMiddle)
    for (let i = 0; i < r.objects.length; i++) {
      const key = r.keys[i]!
      // a key twice: the last one wins at the place of the first, which only the whole assembly follows
      if (byKey.has(key)) return { ...pieces, clean: undefined }
      byKey.set(key, r.objects[i]!)
      if (!oldObjects.has(r.objects[i]!)) added.push(r.objects[i]!)
    }
  const firstObject = last.firstObject.slice(0, kept)
  let count = kept < n ? last.firstObject[kept]! : last.objects.length
  for (const r of newMiddle) {
    firstObject.push(count)
    count += r.objects.length
  }
  const tailFrom = tail < n ? last.firstObject[tail]! : last.objects.length
  for (let i = tail; i < n; i++) firstObject.push(last.firstObject[i]! - tailFrom + count)
  const objects = last.objects.slice(0, kept < n ? last.firstObject[kept]! : last.objects.length)
  for (const o of middleObjects) objects.push(o)
  for (let i = tailFrom; i < last.objects.length; i++) objects.push(last.objects[i]!)
  const clean: LastParse = { text, starts, ends, results, objects, clean: true, firstObject, byKey }
  return { ...pieces, clean, change: { after: last.objects, removed, added } }
}

/**
 * documentChunks() of text[from, until), where `until` is the start of a separator line (undefined:
 * the text's end). Undefined if the separators found do not end exactly there.
 */
function middlePieces(text: string, from: number, until: number | undefined): { text: string; start: number }[] | undefined {
  const chunks: { text: string; start: number }[] = []
  const separator = /^---[ \t]*(?:#.*)?$/gm
  separator.lastIndex = from
  let start = from
  let m: RegExpExecArray | null
  while ((m = separator.exec(text)) !== null) {
    if (until !== undefined && m.index > until) return undefined
    chunks.push({ text: text.slice(start, m.index), start })
    if (m.index === until) return chunks
    start = m.index + m[0].length
    if (text[start] === '\r') start++ // CRLF files
    if (text[start] === '\n') start++
  }
  if (until !== undefined) return undefined
  if (start < text.length) chunks.push({ text: text.slice(start), start })
  return chunks
}

/** Length of the common prefix: block compares (native, no copy), then finer ones. */
function commonPrefix(a: string, b: string): number {
  const max = Math.min(a.length, b.length)
  let i = 0
  for (let step = 1 << 16; step >= 1; step >>= 4) while (i + step <= max && a.slice(i, i + step) === b.slice(i, i + step)) i += step
  return i
}

/** Length of the common suffix, at most `max`. */
function commonSuffix(a: string, b: string, max: number): number {
  let i = 0
  for (let step = 1 << 16; step >= 1; step >>= 4) while (i + step <= max && a.slice(a.length - i - step, a.length - i) === b.slice(b.length - i - step, b.length - i)) i += step
  return i
}

/**
 * Line number (1-based) of an offset of `text`, for offsets asked in increasing order: counted
 * only when a piece has problems to place, so a clean file is never scanned for newlines.
 */
function lineCounter(text: string): (offset: number) => number {
  let at = 0
  let line = 1
  return (offset) => {
    for (let i = text.indexOf('\n', at); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++
    at = offset
    return line
  }
}

function parseChunk(text: string, origin: string, strings: Map<string, string>): ChunkResult {
  const result = (nativeEligible(text) ? nativeChunk(text) : undefined) ?? libraryChunk(text, origin)
  for (const o of result.objects) shareStrings(o, strings)
  return result
}

/** Strings up to this long are shared between the objects of one parse (see shareStrings). */
const SHARED_STRING_MAX = 64

/**
 * Replaces each short string value of a freshly parsed object by the first equal one of the
 * same parse: the parser makes a new string for every scalar, and 10,000 routes repeat their
 * apiVersion, kind, parent Gateway, path type and Service names (~250 bytes per route).
 */
function shareStrings(node: unknown, strings: Map<string, string>): void {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const v = node[i]
      if (typeof v === 'string') node[i] = shared(v, strings)
      else if (typeof v === 'object' && v !== null) shareStrings(v, strings)
    }
    return
  }
  const o = node as Record<string, unknown>
  for (const key in o) {
    const v = o[key]
    if (typeof v === 'string') o[key] = shared(v, strings)
    else if (typeof v === 'object' && v !== null) shareStrings(v, strings)
  }
}

function shared(s: string, strings: Map<string, string>): string {
  if (s.length > SHARED_STRING_MAX) return s
  const held = strings.get(s)
  if (held !== undefined) return held
  strings.set(s, s)
  return s
}

/** Whether a piece's text may go to Bun's YAML parser (see PLAIN). */
export function nativeEligible(text: string): boolean {
  return !PLAIN.test(text)
}

/**
 * What Bun's own YAML parser (native code) is used for: a piece with one document in plain YAML,
 * no anchors, aliases, tags, complex keys, directives or merge keys (any of those characters,
 * even inside a string, sends the piece to the library), whose objects all normalise. It gives
 * the same values as the library for those (test/sources/manifests.test.ts holds it to that on
 * every YAML file of the tests), in a fraction of the time, and without the library's syntax
 * tree: at 10,000 routes the tree's garbage, interleaved with the objects that stay, left the
 * process ~40 MiB larger after start-up. Anything else (errors and their lines included) is
 * the library's.
 */
const PLAIN = /[&*!?%]|<<|__proto__|^(?:---|\.\.\.)/m

function nativeChunk(text: string): ChunkResult | undefined {
  let value: unknown
  try {
    value = Bun.YAML.parse(text)
  } catch {
    return undefined
  }
  if (value === null || value === undefined) return { objects: [], keys: [], problems: NO_PROBLEMS }
  if (typeof value !== 'object' || Array.isArray(value)) return undefined
  const objects: K8sObject[] = []
  for (const item of isList(value) ? (value as { items: unknown[] }).items : [value]) {
    const result = normalise(item)
    if (result === null) continue
    if ('problems' in result) return undefined
    objects.push(result.object)
  }
  return { objects, keys: objects.map(keyOf), problems: NO_PROBLEMS }
}

function libraryChunk(text: string, origin: string): ChunkResult {
  const objects: K8sObject[] = []
  const problems: LoadProblem[] = []
  const lines = new LineCounter()
  let docs: YAML.Document.Parsed[]
  try {
    docs = YAML.parseAllDocuments(text, { lineCounter: lines, uniqueKeys: false }) as YAML.Document.Parsed[]
  } catch (err) {
    return { objects, keys: [], problems: [{ origin, line: 1, message: `cannot parse: ${yamlErrorText(err)}` }] }
  }
  if (!Array.isArray(docs)) docs = [docs as unknown as YAML.Document.Parsed]
  for (const doc of docs) parseDocument(doc, lines.linePos(doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0).line, origin, objects, problems)
  return { objects, keys: objects.map(keyOf), problems: problems.length === 0 ? NO_PROBLEMS : problems }
}

/** Shared by every piece that parsed cleanly (the memo holds one result per document). */
const NO_PROBLEMS: readonly LoadProblem[] = Object.freeze([])

/**
 * Splits a stream at bare `---` lines and parses each piece on its own. The YAML library builds a
 * full syntax tree per call; one call over a 5,000-document file peaked at ~100 MiB more RSS
 * than piecewise parsing (and took 1.5x as long). A `---` at column 0 always ends a document in
 * YAML (even inside a block scalar), so the split never changes the meaning; separators with
 * content on the same line (`--- !tag`) stay inside a piece and the parser handles them.
 */
function documentChunks(text: string): { text: string; start: number }[] {
  const chunks: { text: string; start: number }[] = []
  const separator = /^---[ \t]*(?:#.*)?$/gm
  let start = 0
  let m: RegExpExecArray | null
  while ((m = separator.exec(text)) !== null) {
    chunks.push({ text: text.slice(start, m.index), start })
    start = m.index + m[0].length
    if (text[start] === '\r') start++ // CRLF files
    if (text[start] === '\n') start++
  }
  if (start < text.length) chunks.push({ text: text.slice(start), start })
  return chunks
}

function parseDocument(doc: YAML.Document.Parsed, line: number, origin: string, objects: K8sObject[], problems: LoadProblem[]): void {
  if (doc.errors.length) {
    // `line` is where the document starts; the parser's own position goes in the message
    problems.push({ origin, line, message: `YAML error: ${yamlErrorText(doc.errors[0])}` })
    return
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    problems.push({ origin, line, message: `YAML error: ${yamlErrorText(err)}` })
    return
  }
  if (value === null || value === undefined) return // empty document, e.g. a trailing "---"
  const items = isList(value) ? (value as { items: unknown[] }).items : [value]
  for (const item of items) {
    const result = normalise(item)
    if (result === null) continue // a kind Portico does not read (Deployment, ...)
    if ('problems' in result) {
      problems.push({ origin, line, objectKey: guessKey(item), message: result.problems.join('; ') })
      continue
    }
    objects.push(result.object)
  }
}

/**
 * A parser error as a problem message, without any of the source text: the document may be a
 * Secret, and problems reach /problems, the resource view and the logs. The yaml library
 * appends a code frame (the offending line) after the first line and quotes source text
 * after a colon in a few messages ("Unresolved alias (...): <name>", "Block scalar header
 * includes extra characters: <text>", "Invalid escape sequence <text>", "Unresolved tag: <tag>"),
 * so only the wording before any quote and the position are kept.
 */
export function yamlErrorText(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; linePos?: readonly { line: number; col: number }[] }
  const first = String(e?.message ?? err).split('\n')[0]!
  const at = first.match(/ at line \d+, column \d+:?$/)
  let text = (at ? first.slice(0, at.index) : first).split(': ')[0]!
  if (e?.code === 'BAD_DQ_ESCAPE') text = 'Invalid escape sequence in a double-quoted string'
  else if (e?.code === 'TAG_RESOLVE_FAILED') text = 'Unresolved tag'
  else if (e?.code === 'BAD_SCALAR_START') text = 'Plain value cannot start with this character'
  else if (e?.code === 'BAD_PROP_ORDER') text = 'Anchors and tags must be after the indicator'
  const pos = e?.linePos?.[0]
  return pos ? `${text} at line ${pos.line}, column ${pos.col}` : text
}

function isList(v: unknown): boolean {
  const o = v as Record<string, unknown>
  return typeof o === 'object' && o !== null && typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)
}

/** Best-effort store key of an object that failed validation, so its last good version can be kept. */
function guessKey(item: unknown): string | undefined {
  const o = item as Record<string, any>
  if (typeof o?.kind !== 'string' || typeof o?.metadata?.name !== 'string') return undefined
  const ns = typeof o.metadata.namespace === 'string' ? o.metadata.namespace : o.kind === 'GatewayClass' || o.kind === 'Namespace' ? undefined : 'default'
  return objectKey(o.kind, ns, o.metadata.name)
}
