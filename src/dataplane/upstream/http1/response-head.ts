/**
 * Minimal HTTP/1.1 response-head parser: status line, header fields, and the few fields that
 * decide framing and reuse (Content-Length, Transfer-Encoding, Connection). Everything else is
 * passed through untouched, in order, with its original case.
 *
 * The head is decoded as latin1 so that one char is one byte: offsets in the string are offsets
 * in the buffer, and obs-text bytes survive a round trip back to the wire.
 */
import { HOP_BY_HOP } from '../../http/headers.ts'

/** Larger heads are refused (nginx's default large_client_header_buffers is 4 x 8 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024
const FIRST_SCAN_BYTES = 4096

const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string

/** One char per byte, so string offsets are buffer offsets. */
function latin1(buf: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(buf, start, end)
}

export interface ResponseHead {
  readonly status: number
  readonly statusText: string
  /** [name, value] in wire order and case: the shape Response's constructor takes as is. */
  readonly headers: [string, string][]
  /** Some field is hop-by-hop (Connection, Keep-Alive, TE, ...): a proxy must filter before relaying. */
  readonly hopByHop: boolean
  /**
   * Byte ranges [start, end) in the buffer of the hop-by-hop lines (CRLF included), in order: a
   * proxy can relay the head's bytes without them instead of rebuilding it.
   */
  readonly hopByHopRanges: number[] | undefined
  /** A Connection field names other fields (hop-by-hop too, RFC 9110 §7.6.1): not in the ranges. */
  readonly nominates: boolean
  /** The only hop-by-hop field is "Connection: keep-alive" (what most upstreams send). */
  readonly keepAliveOnly: boolean
  /** The status line says HTTP/1.0: a proxy answers with its own version. */
  readonly http10: boolean
  /** Byte offset just past the status line's CRLF. */
  readonly statusLineEnd: number
  readonly contentType: boolean
  /** -1 when absent. */
  readonly contentLength: number
  readonly chunked: boolean
  /** The server asked to close (Connection: close) or spoke HTTP/1.0 without keep-alive. */
  readonly close: boolean
  /** Byte offset just past the blank line. */
  readonly headEnd: number
}

export class HeadParseError extends Error {}

const HOP_BY_HOP_LENGTHS = new Uint8Array(32)
for (const name of HOP_BY_HOP) HOP_BY_HOP_LENGTHS[name.length] = 1

/**
 * Undefined when the head is not complete yet; throws HeadParseError when it is malformed.
 * `collectFields` false leaves `headers` empty (a caller relaying the head bytes as they are
 * needs only the framing): no string per field.
 */
export function parseResponseHead(buf: Uint8Array, start: number, collectFields = true): ResponseHead | undefined {
  // Most heads fit in the first few KiB: decode that much first, not a whole 64 KiB read.
  let scanEnd = Math.min(buf.length, start + FIRST_SCAN_BYTES)
  let text = latin1(buf, start, scanEnd)
  let blank = text.indexOf('\r\n\r\n')
  if (blank < 0 && scanEnd < buf.length) {
    scanEnd = Math.min(buf.length, start + MAX_HEAD_BYTES)
    text = latin1(buf, start, scanEnd)
    blank = text.indexOf('\r\n\r\n')
  }
  if (blank < 0) {
    if (scanEnd - start >= MAX_HEAD_BYTES) throw new HeadParseError('response head too large')
    return undefined
  }

  // "HTTP/1.1 200 OK": version, 3-digit code, optional reason.
  const lineEnd = text.indexOf('\r\n')
  const d0 = text.charCodeAt(9) - 48
  const d1 = text.charCodeAt(10) - 48
  const d2 = text.charCodeAt(11) - 48
  const wellFormed =
    lineEnd >= 12 && text.startsWith('HTTP/1.') && text.charCodeAt(8) === 32 && (lineEnd === 12 || text.charCodeAt(12) === 32) &&
    d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9
  if (!wellFormed) throw new HeadParseError(`malformed status line: ${JSON.stringify(text.slice(0, Math.min(lineEnd, 64)))}`)
  const status = d0 * 100 + d1 * 10 + d2
  const http10 = text.charCodeAt(7) === 48 /* 0 */
  const statusText = lineEnd > 13 ? text.slice(13, lineEnd) : ''

  const headers: [string, string][] = []
  let hopByHop = false
  let hopByHopRanges: number[] | undefined
  let nominates = false
  let keepAliveLine = false
  /** Where the Content-Length lines are, in case Transfer-Encoding overrides them (dropped then). */
  let lengthRanges: number[] | undefined
  let contentType = false
  let contentLength = -1
  let chunked = false
  let close = http10
  let pos = lineEnd + 2
  while (pos < blank + 2) {
    const lineStart = pos
    const end = text.indexOf('\r\n', pos)
    const colon = text.indexOf(':', pos)
    if (colon < 0 || colon > end || colon === pos) throw new HeadParseError('malformed header line')
    const n = colon - pos
    // Few names matter for framing; their lengths are checked first so most are never sliced.
    const framing = n === 14 || n === 17 || n === 10
    if (!collectFields && !framing && HOP_BY_HOP_LENGTHS[n] !== 1) {
      pos = end + 2
      continue
    }
    const name = text.slice(pos, colon)
    // Fast path for the usual "name: value" with no other whitespace.
    const value = text.charCodeAt(colon + 1) === 32 && !isOws(text.charCodeAt(colon + 2)) && !isOws(text.charCodeAt(end - 1)) ? text.slice(colon + 2, end) : trimOws(text, colon + 1, end)
    if (collectFields) headers.push([name, value])
    if (HOP_BY_HOP_LENGTHS[n] === 1 && HOP_BY_HOP.has(name.toLowerCase())) {
      hopByHop = true
      ;(hopByHopRanges ??= []).push(start + pos, start + end + 2)
    }
    pos = end + 2
    if (n === 12 && name.toLowerCase() === 'content-type') {
      contentType = true
    } else if (n === 14 && name.toLowerCase() === 'content-length') {
      ;(lengthRanges ??= []).push(start + lineStart, start + pos)
      const length = parseContentLength(value)
      if (contentLength >= 0 && contentLength !== length) throw new HeadParseError('conflicting content-length')
      contentLength = length
    } else if (n === 17 && name.toLowerCase() === 'transfer-encoding') {
      // RFC 9112 §6.1: chunked must be the final coding; anything else is close-delimited.
      chunked = /(?:^|,)\s*chunked\s*$/i.test(value)
      if (!chunked) close = true
    } else if (n === 10 && name.toLowerCase() === 'connection') {
      const lower = value.toLowerCase()
      if (lower === 'keep-alive') keepAliveLine = true
      if (lower !== 'keep-alive' && lower !== 'close') nominates = true
      // Whole tokens: "x-close-notify" is not "close".
      const tokens = nominates ? lower.split(',').map((t) => t.trim()) : [lower]
      if (tokens.includes('close')) close = true
      else if (http10 && tokens.includes('keep-alive')) close = false
    }
  }
  // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length (and such a message must not be
  // reused); an intermediary must not pass the Content-Length on.
  if (chunked && contentLength >= 0) {
    contentLength = -1
    close = true
    hopByHop = true
    hopByHopRanges = [...(hopByHopRanges ?? []), ...lengthRanges!]
    sortRanges(hopByHopRanges)
    if (collectFields) for (let i = headers.length - 1; i >= 0; i--) if (headers[i]![0].toLowerCase() === 'content-length') headers.splice(i, 1)
  }
  const keepAliveOnly = keepAliveLine && hopByHopRanges !== undefined && hopByHopRanges.length === 2
  return { status, statusText, headers, hopByHop, hopByHopRanges, nominates, keepAliveOnly, http10, statusLineEnd: start + lineEnd + 2, contentType, contentLength, chunked, close, headEnd: start + blank + 4 }
}

/** Sort [start, end) pairs by start, in place. */
function sortRanges(ranges: number[]): void {
  const pairs: [number, number][] = []
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!])
  pairs.sort((a, b) => a[0] - b[0])
  for (let i = 0; i < pairs.length; i++) [ranges[2 * i], ranges[2 * i + 1]] = pairs[i]!
}

function parseContentLength(value: string): number {
  // A list of identical values ("5, 5") is tolerated by RFC 9110 §8.6; differing ones are not.
  const first = value.includes(',') ? sameValues(value) : value
  if (!/^\d{1,15}$/.test(first)) throw new HeadParseError('malformed content-length')
  return Number(first)
}

function sameValues(value: string): string {
  const parts = value.split(',').map((p) => p.trim())
  if (parts.some((p) => p !== parts[0])) throw new HeadParseError('conflicting content-length')
  return parts[0]!
}

function trimOws(text: string, start: number, end: number): string {
  while (start < end && isOws(text.charCodeAt(start))) start++
  while (end > start && isOws(text.charCodeAt(end - 1))) end--
  return text.slice(start, end)
}

function isOws(c: number): boolean {
  return c === 32 || c === 9
}

/** RFC 9110 §6.4.1: responses that never carry a body, whatever their headers say. */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)
}
