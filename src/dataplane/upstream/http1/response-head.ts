/**
 * Minimal HTTP/1.1 response-head parser: status line, header fields, and the few fields that
 * decide framing and reuse (Content-Length, Transfer-Encoding, Connection). Everything else is
 * passed through untouched, in order, with its original case.
 *
 * The head is decoded as latin1 so that one char is one byte: offsets in the string are offsets
 * in the buffer, and obs-text bytes survive a round trip back to the wire.
 */
import { HOP_BY_HOP } from '../../http/headers.ts'
import { blankLineAt, FieldNames, isOws, latin1, valueAt } from '../../http/wire-text.ts'

/** Larger heads are refused (nginx's default large_client_header_buffers is 4 x 8 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024

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

/**
 * Undefined when the head is not complete yet; throws HeadParseError when it is malformed.
 * `collectFields` false leaves `headers` empty (a caller relaying the head bytes as they are
 * needs only the framing): no string per field.
 */
export function parseResponseHead(buf: Uint8Array, start: number, collectFields = true): ResponseHead | undefined {
  // Found in the bytes, so that only the head is decoded (not the body that came with it).
  const blankAt = blankLineAt(buf, start, start + MAX_HEAD_BYTES)
  if (blankAt < 0) {
    if (buf.byteLength - start >= MAX_HEAD_BYTES) throw new HeadParseError('response head too large')
    return undefined
  }
  const text = latin1(buf, start, blankAt + 4)
  const blank = blankAt - start

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
    // Few names matter for framing: they are recognised in place, and only their values sliced.
    const kind = FIELD_NAMES.kindAt(text, pos, colon - pos)
    if (!collectFields && kind === Field.Other) {
      pos = end + 2
      continue
    }
    const name = collectFields ? text.slice(pos, colon) : ''
    if (collectFields) headers.push([name, valueAt(text, colon + 1, end)])
    if (kind >= Field.Connection) {
      hopByHop = true
      ;(hopByHopRanges ??= []).push(start + pos, start + end + 2)
    }
    pos = end + 2
    if (kind === Field.ContentType) {
      contentType = true
    } else if (kind === Field.ContentLength) {
      ;(lengthRanges ??= []).push(start + lineStart, start + pos)
      const length = contentLengthAt(text, colon + 1, end)
      if (contentLength >= 0 && contentLength !== length) throw new HeadParseError('conflicting content-length')
      contentLength = length
    } else if (kind === Field.TransferEncoding) {
      // RFC 9112 §6.1: chunked must be the final coding; anything else is close-delimited.
      chunked = /(?:^|,)\s*chunked\s*$/i.test(valueAt(text, colon + 1, end))
      if (!chunked) close = true
    } else if (kind === Field.Connection) {
      const lower = valueAt(text, colon + 1, end).toLowerCase()
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

/** The fields the parser looks at; hop-by-hop ones (Connection and after) are relayed without their lines. */
const enum Field {
  Other,
  ContentType,
  ContentLength,
  Connection,
  TransferEncoding,
  OtherHopByHop,
}

const FIELD_NAMES = new FieldNames<Field>(
  [
    ['content-type', Field.ContentType],
    ['content-length', Field.ContentLength],
    ['connection', Field.Connection],
    ['transfer-encoding', Field.TransferEncoding],
    ...[...HOP_BY_HOP].filter((n) => n !== 'connection' && n !== 'transfer-encoding').map((n) => [n, Field.OtherHopByHop] as const),
  ],
  Field.Other,
)

/** Content-Length read in place when it is plain digits (the usual case), else from its string. */
function contentLengthAt(text: string, start: number, end: number): number {
  while (start < end && isOws(text.charCodeAt(start))) start++
  while (end > start && isOws(text.charCodeAt(end - 1))) end--
  let length = 0
  if (end - start >= 1 && end - start <= 15) {
    let i = start
    for (; i < end; i++) {
      const digit = text.charCodeAt(i) - 48
      if (digit < 0 || digit > 9) break
      length = length * 10 + digit
    }
    if (i === end) return length
  }
  return parseContentLength(text.slice(start, end))
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


/** RFC 9110 §6.4.1: responses that never carry a body, whatever their headers say. */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)
}
