/**
 * Byte-level helpers shared by the HTTP/1 head parsers (front/request-head.ts,
 * upstream/http1/response-head.ts). Heads are decoded as latin1, one char per wire byte, so
 * string offsets are byte offsets; these helpers let a parser find a head and compare field
 * names without decoding bodies or allocating strings it only needs to look at.
 */

const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string
const bufferIndexOf = Buffer.prototype.indexOf as (this: Uint8Array, value: Uint8Array, byteOffset: number) => number
const BLANK_LINE = Buffer.from('\r\n\r\n')

/** Decode bytes as latin1 (one char per byte). */
export function latin1(buf: Uint8Array, start = 0, end = buf.length): string {
  return latin1Slice.call(buf, start, end)
}

/**
 * Offset of the CRLFCRLF that ends a head starting at `start`, searched in the bytes (no
 * decoding of what follows, such as a body), or -1 when there is none before `limit`.
 */
export function blankLineAt(buf: Uint8Array, start: number, limit: number): number {
  const end = Math.min(buf.byteLength, limit)
  const found = bufferIndexOf.call(end < buf.byteLength ? buf.subarray(0, end) : buf, BLANK_LINE, start)
  return found < 0 || found + 4 > end ? -1 : found
}

/** Whether text[start, start + lower.length) is `lower` (a lower-case ASCII name) in any ASCII case. */
export function isNameAt(text: string, start: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = text.charCodeAt(start + i)
    const l = lower.charCodeAt(i)
    if (c !== l && (l < 0x61 || l > 0x7a || c !== l - 0x20)) return false
  }
  return true
}

/**
 * Field names a parser looks at, by kind, recognised in place: candidates are kept by length so
 * most names are ruled out without a comparison, and none needs a string of its own.
 */
export class FieldNames<K extends number> {
  readonly #byLength: (readonly [string, K])[][] = []

  constructor(
    entries: Iterable<readonly [string, K]>,
    /** The kind of every other name. */
    readonly other: K,
  ) {
    for (const entry of entries) (this.#byLength[entry[0].length] ??= []).push(entry)
  }

  /** The kind of the name text[start, start + length). */
  kindAt(text: string, start: number, length: number): K {
    const candidates = this.#byLength[length]
    if (candidates !== undefined) for (const [name, kind] of candidates) if (isNameAt(text, start, name)) return kind
    return this.other
  }
}

/** text[start, end) without leading and trailing OWS (SP, HTAB): a field value. */
export function valueAt(text: string, start: number, end: number): string {
  while (start < end && isOws(text.charCodeAt(start))) start++
  while (end > start && isOws(text.charCodeAt(end - 1))) end--
  return text.slice(start, end)
}

export function isOws(c: number): boolean {
  return c === 32 || c === 9
}
