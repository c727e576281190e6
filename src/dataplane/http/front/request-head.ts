/**
 * Strict HTTP/1.x request-head parser for the front (front.ts). Everything a backend could read
 * differently from us is refused here, before routing: that is what makes request smuggling
 * impossible (RFC 9112 §6.3, §11.2). The head is decoded as latin1, one char per wire byte, so
 * offsets are byte offsets and obs-text survives the trip back to the wire.
 *
 * Answers: 400 for syntax (bad request line, obs-fold, bare CR/LF, NUL and controls, bad field
 * names, missing/duplicate/invalid Host, CL+TE, invalid or conflicting Content-Length, a
 * Transfer-Encoding whose last coding is not chunked); 414 for a long request-target; 431 for a
 * large header block; 501 for a transfer coding we do not implement; 505 for versions other
 * than HTTP/1.0 and HTTP/1.1.
 */

import { FORWARDING_FIELDS, HOP_BY_HOP } from '../headers.ts'
import { FieldNames, valueAt } from '../wire-text.ts'

/**
 * A parsed head. The fields every request needs are computed while parsing; the per-field
 * strings (lines, names, values) only when something asks for them (header matching, a head
 * that must be rebuilt): a plain GET never allocates them. It is also the request as routing
 * and backend selection read it (MatchInput, FieldReader), so matching allocates nothing.
 */
export class RequestHead {
  #lines: string[] | undefined
  #names: string[] | undefined
  #values: string[] | undefined
  #params: URLSearchParams | undefined

  constructor(
    /** The head as latin1 text, blank line included. */
    readonly text: string,
    /** Per field: where its line starts, its colon, and its end (the CR), in `text`. */
    readonly fieldOffsets: readonly number[],
    readonly method: string,
    /** As received: origin-form ("/p?q"), absolute-form, authority-form or "*". */
    readonly target: string,
    /** Path (no query) of an origin-form or absolute-form target; "" for "*" and authority-form. */
    readonly path: string,
    /** Query with its "?", or "". */
    readonly query: string,
    /** path + query: the target to send on (absolute-form becomes origin-form, RFC 9112 §3.2.2). */
    readonly originForm: string,
    readonly http10: boolean,
    /** The Host header's value, or the authority of an absolute-form target; "" when absent (HTTP/1.0). */
    readonly host: string,
    /** -1 when absent. */
    readonly contentLength: number,
    readonly chunked: boolean,
    /** The connection ends after this exchange (Connection: close, or HTTP/1.0 without keep-alive). */
    readonly close: boolean,
    /** The request asks for a protocol switch (Upgrade header present). */
    readonly upgrade: boolean,
    /** Expect: 100-continue (or any Expect). */
    readonly expect: boolean,
    /** The Connection field(s), joined; undefined when absent. */
    readonly connectionValue: string | undefined,
    /**
     * Some field a proxy must not pass on as is: hop-by-hop (Connection, Keep-Alive, TE, ...) or
     * one it rewrites (X-Forwarded-*, Forwarded). False means the head can go on verbatim.
     */
    readonly proxyFields: boolean,
    /** An X-Request-Id field is present. */
    readonly requestId: boolean,
    /** Byte length of the head including the blank line. */
    readonly headBytes: number,
    /** No byte above 0x7f (obs-text) in the head: its strings can be written without re-encoding. */
    readonly ascii: boolean,
  ) {}

  /** Header lines as received ("Name: value"), without the request line; parallel to `names`. */
  get lines(): readonly string[] {
    if (this.#lines === undefined) {
      const { text, fieldOffsets: at } = this
      const lines: string[] = []
      for (let i = 0; i < at.length; i += 3) lines.push(text.slice(at[i], at[i + 2]))
      this.#lines = lines
    }
    return this.#lines
  }

  /** Lower-case field names, parallel to `lines`. */
  get names(): readonly string[] {
    if (this.#names === undefined) {
      const { text, fieldOffsets: at } = this
      const names: string[] = []
      for (let i = 0; i < at.length; i += 3) names.push(text.slice(at[i], at[i + 1]).toLowerCase())
      this.#names = names
    }
    return this.#names
  }

  /** As a MatchInput (http/match.ts) and PickInput reads them: the head is its own field reader. */
  get headers(): this {
    return this
  }

  /**
   * A field's value by lower-case name, or null. Repeated fields read as one comma-joined value
   * (RFC 9110 §5.3), as Headers.get does; cookies with "; ".
   */
  get(name: string): string | null {
    const { names, values } = this
    let found: string | null = null
    for (let i = 0; i < names.length; i++) {
      if (names[i] !== name) continue
      found = found === null ? values[i]! : `${found}${name === 'cookie' ? '; ' : ', '}${values[i]}`
    }
    return found
  }

  has(name: string): boolean {
    return this.names.includes(name)
  }

  /** First value of a query parameter; the query is parsed on first use. */
  queryParam(name: string): string | undefined {
    if (this.query === '') return undefined
    this.#params ??= new URLSearchParams(this.query)
    return this.#params.get(name) ?? undefined
  }

  /** Field values (OWS trimmed), parallel to `lines`. */
  get values(): readonly string[] {
    if (this.#values === undefined) {
      const { text, fieldOffsets: at } = this
      const values: string[] = []
      for (let i = 0; i < at.length; i += 3) values.push(valueAt(text, at[i + 1]! + 1, at[i + 2]!))
      this.#values = values
    }
    return this.#values
  }
}

export class RequestHeadError {
  constructor(
    readonly status: 400 | 408 | 413 | 414 | 431 | 501 | 505,
    readonly reason: string,
  ) {}
}

export interface HeadLimits {
  readonly maxRequestTargetBytes: number
  readonly maxHeaderBytes: number
}

/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** The same as a byte table (1: tchar), for scanning field names in place. */
const TCHAR = new Uint8Array(256)
for (let c = 0; c < 256; c++) if (TOKEN.test(String.fromCharCode(c))) TCHAR[c] = 1
/**
 * One pass over the whole field block: controls other than HTAB and DEL (RFC 9110 §5.5), a CR
 * not followed by LF, an LF not preceded by CR, and a line starting with whitespace (obs-fold).
 */
const BAD_FIELD_BYTES = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n|\n[ \t]/
const NON_ASCII = /[\x80-\xff]/
/** A Transfer-Encoding value: tokens separated by commas with optional SP/HTAB around them. */
const CODING_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/
const OWS_AROUND = /^[ \t]+|[ \t]+$/g
/** An LF not preceded by CR, or a CR followed by something other than LF (an incomplete head). */
const BARE_LINE_END = /(?<!\r)\n|\r[^\n]/
/** Request-target bytes: visible ASCII and obs-text; no spaces or controls, no fragment (RFC 9112 §3.2). */
const BAD_TARGET = /[\x00-\x20\x7f#]/
/**
 * Paths the gateway and a backend could read differently: dot-segments (also percent-encoded)
 * and backslashes, which URL parsers (Bun.serve's among them) resolve while a byte-for-byte
 * matcher would not; a rule on /admin must not be bypassed with /public/../admin. Refused.
 */
const AMBIGUOUS_PATH = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)|\\/i
/** RFC 3986 host [":" port]: an IP literal or reg-name characters (no comma: nginx and Envoy refuse "a, b" too). */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9._~!$&'()*+;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/
/** The last Host value found valid (keep-alive clients repeat theirs). */
let lastValidHost = ''

/**
 * Checks for an incomplete head: whether what arrived so far is already over a limit, so a
 * client cannot make us buffer an endless head. Returns the error, or undefined to keep reading.
 */
export function incompleteHeadError(text: string, limits: HeadLimits): RequestHeadError | undefined {
  // Lines ended by a bare LF (or a bare CR) never make the CRLFCRLF that completes a head: refuse
  // them now rather than at the header deadline. A CR last in what arrived may still get its LF.
  if (BARE_LINE_END.test(text)) return new RequestHeadError(400, 'bare CR or LF in request head')
  const lineEnd = text.indexOf('\r\n')
  if (lineEnd < 0) {
    // Request line still arriving: method + SP + target + SP + "HTTP/1.1".
    if (text.length > limits.maxRequestTargetBytes + 64) return new RequestHeadError(414, 'request-target too long')
    return undefined
  }
  if (text.length - lineEnd > limits.maxHeaderBytes + 4) return new RequestHeadError(431, 'request header fields too large')
  return undefined
}

/** Parse the complete head `text[0..blank]`: `blank` is the offset of its CRLFCRLF (wire-text.ts blankLineAt). */
export function parseRequestHead(text: string, blank: number, limits: HeadLimits): RequestHead | RequestHeadError {
  const lineEnd = text.indexOf('\r\n')
  const requestLine = text.slice(0, lineEnd)
  const sp1 = requestLine.indexOf(' ')
  const sp2 = requestLine.lastIndexOf(' ')
  if (sp1 <= 0 || sp2 === sp1) {
    if (requestLine.length > limits.maxRequestTargetBytes) return new RequestHeadError(414, 'request-target too long')
    return new RequestHeadError(400, 'malformed request line')
  }
  const method = requestLine.slice(0, sp1)
  const target = requestLine.slice(sp1 + 1, sp2)
  if (!TOKEN.test(method)) return new RequestHeadError(400, 'malformed method')
  // A reverse proxy does not open tunnels to arbitrary hosts.
  if (method === 'CONNECT') return new RequestHeadError(501, 'CONNECT not implemented')
  if (target.length > limits.maxRequestTargetBytes) return new RequestHeadError(414, 'request-target too long')
  if (target.length === 0 || BAD_TARGET.test(target)) return new RequestHeadError(400, 'malformed request-target')
  let http10 = false
  if (lineEnd - sp2 !== 9 || !text.startsWith('HTTP/1.1', sp2 + 1)) {
    const version = requestLine.slice(sp2 + 1)
    if (version === 'HTTP/1.0') http10 = true
    else if (/^HTTP\/\d\.\d$/.test(version)) return new RequestHeadError(505, 'HTTP version not supported')
    else return new RequestHeadError(400, 'malformed HTTP version')
  }
  if (blank - lineEnd > limits.maxHeaderBytes + 2) return new RequestHeadError(431, 'request header fields too large')

  // From the request line's CRLF to the blank line: the LF before a folded line is inside it.
  const block = text.slice(lineEnd, blank + 2)
  const bad = BAD_FIELD_BYTES.exec(block)
  if (bad) {
    // obs-fold (RFC 9112 §5.2): a line starting with whitespace continues the previous one.
    return new RequestHeadError(400, bad[0].length === 2 ? 'obsolete line folding' : 'control character in header')
  }
  const ascii = !NON_ASCII.test(block) && !NON_ASCII.test(requestLine)

  // One pass over the fields, by offsets: only the fields that decide framing, routing or
  // persistence become strings here (see RequestHead for the rest).
  const offsets: number[] = []
  let host: string | undefined
  let contentLength = -1
  let transferEncoding: string | undefined
  let connection: string | undefined
  let upgrade = false
  let expect = false
  let proxyFields = false
  let requestId = false
  let pos = lineEnd + 2
  const stop = blank + 2
  while (pos < stop) {
    const end = text.indexOf('\r\n', pos)
    let colon = pos
    while (TCHAR[text.charCodeAt(colon)] === 1) colon++
    if (colon === pos || text.charCodeAt(colon) !== 58 /* : */) {
      // No whitespace between name and colon (RFC 9112 §5.1), only token characters.
      const first = text.indexOf(':', pos)
      return new RequestHeadError(400, first <= pos || first > end ? 'malformed header line' : 'malformed header name')
    }
    offsets.push(pos, colon, end)
    switch (FIELD_NAMES.kindAt(text, pos, colon - pos)) {
      case Field.Host: {
        if (host !== undefined) return new RequestHeadError(400, 'duplicate Host header')
        const value = valueAt(text, colon + 1, end)
        // Keep-alive clients repeat their Host: one valid value is remembered.
        if (value !== lastValidHost) {
          if (!VALID_HOST.test(value)) return new RequestHeadError(400, 'invalid Host header')
          lastValidHost = value
        }
        host = value
        break
      }
      case Field.ContentLength: {
        const value = valueAt(text, colon + 1, end)
        if (!/^\d{1,15}$/.test(value)) return new RequestHeadError(400, 'invalid Content-Length')
        // Even identical duplicates: a backend may join them into "5, 5" and refuse (nginx refuses too).
        if (contentLength >= 0) return new RequestHeadError(400, 'duplicate Content-Length header')
        contentLength = Number(value)
        break
      }
      case Field.TransferEncoding: {
        const value = valueAt(text, colon + 1, end)
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`
        proxyFields = true
        break
      }
      case Field.Connection: {
        const value = valueAt(text, colon + 1, end)
        connection = connection === undefined ? value : `${connection}, ${value}`
        proxyFields = true
        break
      }
      case Field.Upgrade:
        upgrade = true
        proxyFields = true
        break
      case Field.Expect:
        expect = true
        break
      case Field.Proxy:
        proxyFields = true
        break
      case Field.RequestId:
        requestId = true
        break
    }
    pos = end + 2
  }

  let chunked = false
  if (transferEncoding !== undefined) {
    // RFC 9112 §6.1: a sender must not send both; a proxy must not forward both (smuggling).
    if (contentLength >= 0) return new RequestHeadError(400, 'both Content-Length and Transfer-Encoding')
    if (http10) return new RequestHeadError(400, 'Transfer-Encoding in an HTTP/1.0 request')
    // Exactly a comma list of tokens (RFC 9112 §6.1): no empty elements, no parameters, and no
    // other bytes around a coding (String.trim would take "\xa0chunked\xa0" for "chunked").
    if (!CODING_LIST.test(transferEncoding)) return new RequestHeadError(400, 'invalid Transfer-Encoding')
    const codings = transferEncoding.toLowerCase().split(',').map((c) => c.replace(OWS_AROUND, ''))
    // Chunked must be last (and only once), else the length is unknowable: 400 (RFC 9112 §6.3).
    if (codings[codings.length - 1] !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1) {
      return codings.every((c) => c === 'chunked' || TOKEN.test(c)) && !codings.includes('chunked')
        ? new RequestHeadError(501, 'transfer-coding not implemented')
        : new RequestHeadError(400, 'invalid Transfer-Encoding')
    }
    // gzip, chunked and the like: valid HTTP, but we forward bytes as framed, not codings we do not know.
    if (codings.length > 1) return new RequestHeadError(501, 'transfer-coding not implemented')
    chunked = true
  }

  let path = ''
  let query = ''
  let authority = host
  if (target.charCodeAt(0) === 47 /* / */) {
    const q = target.indexOf('?')
    path = q < 0 ? target : target.slice(0, q)
    query = q < 0 ? '' : target.slice(q)
  } else if (/^https?:\/\//i.test(target)) {
    // absolute-form (RFC 9112 §3.2.2): its authority wins over the Host header.
    const start = target.indexOf('//') + 2
    let slash = target.indexOf('/', start)
    const q = target.indexOf('?', start)
    if (slash < 0 || (q >= 0 && q < slash)) slash = q < 0 ? target.length : q
    authority = target.slice(start, slash)
    if (!VALID_HOST.test(authority) || authority.includes('@')) return new RequestHeadError(400, 'invalid request-target authority')
    const rest = target.slice(slash)
    const rq = rest.indexOf('?')
    path = rq < 0 ? rest || '/' : rest.slice(0, rq) || '/'
    query = rq < 0 ? '' : rest.slice(rq)
  } else if (target === '*') {
    if (method !== 'OPTIONS') return new RequestHeadError(400, 'asterisk-form is only for OPTIONS')
  } else return new RequestHeadError(400, 'malformed request-target')
  if (AMBIGUOUS_PATH.test(path)) return new RequestHeadError(400, 'dot-segment or backslash in path')
  if (host === undefined && !http10) return new RequestHeadError(400, 'missing Host header')

  let close = http10
  if (connection !== undefined) {
    // Whole tokens: "x-close-notify" is not "close".
    const tokens = connection.toLowerCase().split(',').map((t) => t.trim())
    if (tokens.includes('close')) close = true
    else if (http10 && tokens.includes('keep-alive')) close = false
  }
  const originForm = target.charCodeAt(0) === 47 || target === '*' ? target : path + query
  return new RequestHead(
    text,
    offsets,
    method,
    target,
    path,
    query,
    originForm,
    http10,
    authority ?? '',
    contentLength,
    chunked,
    close,
    upgrade,
    expect,
    connection,
    proxyFields,
    requestId,
    blank + 4,
    ascii,
  )
}

/** The field names parsing looks at; everything else is Field.Other. */
const enum Field {
  Other,
  Host,
  ContentLength,
  TransferEncoding,
  Connection,
  Upgrade,
  Expect,
  /** Hop-by-hop or rewritten by the proxy (Keep-Alive, TE, X-Forwarded-For, ...). */
  Proxy,
  RequestId,
}

const FIELD_NAMES = new FieldNames<Field>(
  [
    ['host', Field.Host],
    ['content-length', Field.ContentLength],
    ['transfer-encoding', Field.TransferEncoding],
    ['connection', Field.Connection],
    ['upgrade', Field.Upgrade],
    ['expect', Field.Expect],
    ['x-request-id', Field.RequestId],
    ...[...HOP_BY_HOP, ...FORWARDING_FIELDS].filter((n) => !['connection', 'transfer-encoding', 'upgrade'].includes(n)).map((n) => [n, Field.Proxy] as const),
  ],
  Field.Other,
)
