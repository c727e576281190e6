/**
 * Parses manifest text (multi-document YAML or JSON, `kind: List` included) into normalised
 * objects and per-document problems with line numbers. Pure: used by the file source and tests.
 */
import YAML, { LineCounter } from 'yaml'
import { keyOf, normalise, objectKey, type K8sObject } from '../store/kinds.ts'
import type { LoadProblem } from './source.ts'

export interface ParsedManifests {
  objects: K8sObject[]
  problems: LoadProblem[]
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

/**
 * Parse results of one origin's pieces, by their text, from its previous parse. Editing one
 * route in a file of thousands re-parses that route's document only (a full parse of 5,000
 * documents takes ~350 ms), and the unchanged objects come back as the same objects, which
 * the store and the incremental translator recognise without comparing them.
 */
export class ManifestMemo {
  /** Replaced by every parse: only the pieces of the latest one are kept. */
  pieces: ReadonlyMap<string, ChunkResult> = new Map()
}

export function parseManifests(text: string, origin: string, memo?: ManifestMemo): ParsedManifests {
  const problems: LoadProblem[] = []
  const pieces = new Map<string, ChunkResult>()
  // duplicates inside one origin: the last one wins, as `kubectl apply` of the file would
  const byKey = new Map<string, K8sObject>()
  const lineOf = lineCounter(text)
  for (const chunk of documentChunks(text)) {
    const result = memo?.pieces.get(chunk.text) ?? pieces.get(chunk.text) ?? parseChunk(chunk.text, origin)
    pieces.set(chunk.text, result)
    for (let i = 0; i < result.objects.length; i++) byKey.set(result.keys[i]!, result.objects[i]!)
    if (result.problems.length === 0) continue
    const firstLine = lineOf(chunk.start)
    for (const p of result.problems) problems.push({ ...p, line: firstLine - 1 + (p.line ?? 1) })
  }
  if (memo) memo.pieces = pieces
  return { objects: [...byKey.values()], problems }
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

function parseChunk(text: string, origin: string): ChunkResult {
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
