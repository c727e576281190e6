/**
 * The front's strict request-head parser (src/dataplane/http/front/request-head.ts), as a unit:
 * request-target forms, versions, Host, framing (Content-Length / Transfer-Encoding), connection
 * persistence, the 400/414/431/501/505 split, incomplete heads over a limit, and field reads.
 */
import { describe, expect, test } from 'bun:test'
import {
  incompleteHeadError,
  parseRequestHead,
  RequestHeadError,
  type HeadLimits,
  type RequestHead,
} from '../../src/dataplane/http/front/request-head.ts'
import { blankLineAt } from '../../src/dataplane/http/wire-text.ts'

const LIMITS: HeadLimits = { maxRequestTargetBytes: 64, maxHeaderBytes: 256 }

function parse(text: string, limits: HeadLimits = LIMITS): RequestHead | RequestHeadError {
  const blank = blankLineAt(Buffer.from(text, 'latin1'), 0, Infinity)
  if (blank < 0) throw new Error('test head has no blank line')
  return parseRequestHead(text, blank, limits)
}

function ok(text: string, limits: HeadLimits = LIMITS): RequestHead {
  const head = parse(text, limits)
  if (head instanceof RequestHeadError) throw new Error(`expected a head, got ${head.status} ${head.reason}`)
  return head
}

/** [status, reason] of a refused head; fails the test when the head parses. */
function refused(text: string, limits: HeadLimits = LIMITS): [number, string] {
  const head = parse(text, limits)
  if (!(head instanceof RequestHeadError)) throw new Error(`expected an error for ${JSON.stringify(text)}`)
  return [head.status, head.reason]
}

const h11 = (target: string, ...fields: string[]) => `GET ${target} HTTP/1.1\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`

describe('blankLineAt', () => {
  const bytes = (s: string) => Buffer.from(s, 'latin1')
  test('finds the CRLFCRLF offset in the bytes, or -1', () => {
    expect(blankLineAt(bytes('GET / HTTP/1.1\r\nHost: a\r\n\r\nbody'), 0, 1000)).toBe(23)
    expect(blankLineAt(bytes('GET / HTTP/1.1\r\nHost: a\r\n'), 0, 1000)).toBe(-1)
    expect(blankLineAt(bytes('GET / HTTP/1.1\nHost: a\n\n'), 0, 1000)).toBe(-1)
  })

  test('only within the limit, and from the start offset', () => {
    const head = bytes('GET / HTTP/1.1\r\nHost: a\r\n\r\n')
    expect(blankLineAt(head, 0, 27)).toBe(23)
    // the blank line straddles the limit: not found yet
    expect(blankLineAt(head, 0, 26)).toBe(-1)
    const two = bytes('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n')
    expect(blankLineAt(two, 25, 1000)).toBe(40)
  })
})

describe('valid heads', () => {
  test('origin-form: method, target, path, query, fields in order, headBytes', () => {
    const text = 'GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: app.test\r\nX-One:  v1 \r\nx-two:\tv2\r\n\r\nBODY'
    const head = ok(text)
    expect(head.method).toBe('GET')
    expect(head.target).toBe('/a/b?x=1&y=2')
    expect(head.path).toBe('/a/b')
    expect(head.query).toBe('?x=1&y=2')
    expect(head.http10).toBe(false)
    expect(head.host).toBe('app.test')
    expect(head.lines).toEqual(['Host: app.test', 'X-One:  v1 ', 'x-two:\tv2'])
    expect(head.names).toEqual(['host', 'x-one', 'x-two'])
    expect(head.values).toEqual(['app.test', 'v1', 'v2'])
    expect(head.contentLength).toBe(-1)
    expect(head.chunked).toBe(false)
    expect(head.close).toBe(false)
    expect(head.upgrade).toBe(false)
    expect(head.expect).toBe(false)
    expect(head.connectionValue).toBeUndefined()
    expect(head.headBytes).toBe(text.length - 4)
  })

  test('absolute-form: the target authority wins over Host; path and query split', () => {
    const head = ok(h11('http://Api.Example:8080/v1/items?id=7', 'Host: other.test'))
    expect(head.target).toBe('http://Api.Example:8080/v1/items?id=7')
    expect(head.host).toBe('Api.Example:8080')
    expect(head.path).toBe('/v1/items')
    expect(head.query).toBe('?id=7')
  })

  test('absolute-form without a path reads as "/"; a query right after the authority is kept', () => {
    const bare = ok(h11('https://api.example', 'Host: api.example'))
    expect([bare.host, bare.path, bare.query]).toEqual(['api.example', '/', ''])
    const q = ok(h11('http://api.example?x=1', 'Host: api.example'))
    expect([q.host, q.path, q.query]).toEqual(['api.example', '/', '?x=1'])
  })

  test('absolute-form with userinfo or a bad authority → 400', () => {
    expect(refused(h11('http://user@api.example/', 'Host: api.example'))).toEqual([400, 'invalid request-target authority'])
    expect(refused(h11('http://a,b/', 'Host: api.example'))).toEqual([400, 'invalid request-target authority'])
  })

  test('asterisk-form only for OPTIONS', () => {
    const head = ok('OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n')
    expect([head.method, head.target, head.path, head.query]).toEqual(['OPTIONS', '*', '', ''])
    expect(refused('GET * HTTP/1.1\r\nHost: app.test\r\n\r\n')).toEqual([400, 'asterisk-form is only for OPTIONS'])
  })

  test('CONNECT is not implemented by a reverse proxy (501); authority-form is refused otherwise', () => {
    expect(refused('CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n')).toEqual([501, 'CONNECT not implemented'])
    expect(refused('GET db.internal:5432 HTTP/1.1\r\nHost: db.internal\r\n\r\n')).toEqual([400, 'malformed request-target'])
  })

  test('HTTP/1.0: no Host needed, closes by default, keep-alive keeps it open', () => {
    const plain = ok('GET /x HTTP/1.0\r\n\r\n')
    expect([plain.http10, plain.host, plain.close]).toEqual([true, '', true])
    const ka = ok('GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n')
    expect([ka.http10, ka.close, ka.connectionValue]).toEqual([true, false, 'Keep-Alive'])
    // close beats keep-alive
    expect(ok('GET /x HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n').close).toBe(true)
  })

  test('HTTP/1.1: persistent unless Connection: close; repeated Connection fields are joined', () => {
    expect(ok(h11('/', 'Host: a')).close).toBe(false)
    expect(ok(h11('/', 'Host: a', 'Connection: Close')).close).toBe(true)
    const joined = ok(h11('/', 'Host: a', 'Connection: x-a', 'connection: x-b'))
    expect(joined.connectionValue).toBe('x-a, x-b')
    expect(joined.close).toBe(false)
  })

  test('a Connection option that merely contains "close" does not close the connection', () => {
    // RFC 9110 §7.6.1: Connection carries tokens; "x-close-notify" is a field name, not "close".
    expect(ok(h11('/', 'Host: a', 'Connection: x-close-notify', 'X-Close-Notify: 1')).close).toBe(false)
  })

  test('an HTTP/1.0 Connection option that merely contains "keep-alive" does not keep it open', () => {
    expect(ok('GET / HTTP/1.0\r\nConnection: x-keep-alive-hint\r\n\r\n').close).toBe(true)
  })

  test('Upgrade and Expect are flagged', () => {
    const head = ok(h11('/ws', 'Host: a', 'Upgrade: websocket', 'Connection: Upgrade', 'Expect: 100-continue'))
    expect([head.upgrade, head.expect]).toEqual([true, true])
  })

  test('Content-Length and chunked framing', () => {
    expect(ok('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n').contentLength).toBe(0)
    expect(ok('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789012345\r\n\r\n').contentLength).toBe(123456789012345)
    const chunked = ok('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n')
    expect([chunked.chunked, chunked.contentLength]).toEqual([true, -1])
  })

  test('empty field values and obs-text survive; the ascii flag tells obs-text apart', () => {
    const head = ok('GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Latin: caf\xe9\r\n\r\n')
    expect(head.values).toEqual(['a', '', 'caf\xe9'])
    expect(head.ascii).toBe(false)
    expect(ok(h11('/', 'Host: a')).ascii).toBe(true)
  })

  test('IPv6 literal Host with port', () => {
    expect(ok(h11('/', 'Host: [::1]:8080')).host).toBe('[::1]:8080')
  })
})

describe('refused heads', () => {
  test('request line', () => {
    expect(refused('GET /\r\nHost: a\r\n\r\n')).toEqual([400, 'malformed request line'])
    expect(refused('GET / x HTTP/1.1\r\nHost: a\r\n\r\n')).toEqual([400, 'malformed request-target'])
    expect(refused('G(T / HTTP/1.1\r\nHost: a\r\n\r\n')).toEqual([400, 'malformed method'])
    expect(refused('GET relative HTTP/1.1\r\nHost: a\r\n\r\n')).toEqual([400, 'malformed request-target'])
    expect(refused('GET / http/1.1\r\nHost: a\r\n\r\n')).toEqual([400, 'malformed HTTP version'])
    // A trailing space makes "/ HTTP/1.1" the target.
    expect(refused('GET / HTTP/1.1 \r\nHost: a\r\n\r\n')).toEqual([400, 'malformed request-target'])
    expect(refused('GET / HTTP/1.1x\r\nHost: a\r\n\r\n')).toEqual([400, 'malformed HTTP version'])
  })

  test('versions other than 1.0 and 1.1 → 505', () => {
    expect(refused('GET / HTTP/2.0\r\nHost: a\r\n\r\n')).toEqual([505, 'HTTP version not supported'])
    expect(refused('GET / HTTP/0.9\r\nHost: a\r\n\r\n')).toEqual([505, 'HTTP version not supported'])
  })

  test('Host: missing (1.1), duplicate, invalid', () => {
    expect(refused('GET / HTTP/1.1\r\nX: y\r\n\r\n')).toEqual([400, 'missing Host header'])
    expect(refused(h11('/', 'Host: a.test', 'host: a.test'))).toEqual([400, 'duplicate Host header'])
    expect(refused(h11('/', 'Host: a.test', 'Host: b.test'))).toEqual([400, 'duplicate Host header'])
    expect(refused(h11('/', 'Host: a.test, b.test'))).toEqual([400, 'invalid Host header'])
    expect(refused(h11('/', 'Host: a/b'))).toEqual([400, 'invalid Host header'])
  })

  test('field syntax: obs-fold, bare CR/LF, controls, bad names', () => {
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n')).toEqual([400, 'obsolete line folding'])
    expect(refused('GET / HTTP/1.1\r\n\tX-A: 1\r\nHost: a\r\n\r\n')).toEqual([400, 'obsolete line folding'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\n\r\n')).toEqual([400, 'control character in header'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n')).toEqual([400, 'control character in header'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n')).toEqual([400, 'control character in header'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n')).toEqual([400, 'control character in header'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n')).toEqual([400, 'malformed header name'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n')).toEqual([400, 'malformed header name'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n')).toEqual([400, 'malformed header line'])
    expect(refused('GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n')).toEqual([400, 'malformed header line'])
  })

  test('Content-Length: not digits, a list, or repeated (even identical) → 400', () => {
    const post = (...f: string[]) => `POST / HTTP/1.1\r\nHost: a\r\n${f.map((x) => `${x}\r\n`).join('')}\r\n`
    expect(refused(post('Content-Length: +5'))).toEqual([400, 'invalid Content-Length'])
    expect(refused(post('Content-Length: 5, 5'))).toEqual([400, 'invalid Content-Length'])
    expect(refused(post('Content-Length: 0x10'))).toEqual([400, 'invalid Content-Length'])
    expect(refused(post('Content-Length: 1234567890123456'))).toEqual([400, 'invalid Content-Length'])
    expect(refused(post('Content-Length: 5', 'Content-Length: 5'))).toEqual([400, 'duplicate Content-Length header'])
  })

  test('Content-Length with Transfer-Encoding → 400 (smuggling)', () => {
    expect(refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n')).toEqual([400, 'both Content-Length and Transfer-Encoding'])
    expect(refused('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n')).toEqual([400, 'both Content-Length and Transfer-Encoding'])
  })

  test('Transfer-Encoding in HTTP/1.0 → 400', () => {
    expect(refused('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n')).toEqual([400, 'Transfer-Encoding in an HTTP/1.0 request'])
  })

  test('transfer codings: unknown but valid → 501, chunked not last or repeated or garbage → 400', () => {
    const te = (...v: string[]) => `POST / HTTP/1.1\r\nHost: a\r\n${v.map((x) => `Transfer-Encoding: ${x}\r\n`).join('')}\r\n`
    expect(refused(te('gzip'))).toEqual([501, 'transfer-coding not implemented'])
    expect(refused(te('gzip, chunked'))).toEqual([501, 'transfer-coding not implemented'])
    // Split over two fields reads as one list.
    expect(refused(te('gzip', 'chunked'))).toEqual([501, 'transfer-coding not implemented'])
    expect(refused(te('chunked, gzip'))).toEqual([400, 'invalid Transfer-Encoding'])
    expect(refused(te('chunked, chunked'))).toEqual([400, 'invalid Transfer-Encoding'])
    expect(refused(te('chunked', 'chunked'))).toEqual([400, 'invalid Transfer-Encoding'])
    expect(refused(te('chunked;q=1'))).toEqual([400, 'invalid Transfer-Encoding'])
    expect(refused(te(''))).toEqual([400, 'invalid Transfer-Encoding'])
  })
})

describe('limits', () => {
  test('request-target over the limit → 414; at the limit is fine', () => {
    const at = `/${'a'.repeat(LIMITS.maxRequestTargetBytes - 1)}`
    expect(ok(h11(at, 'Host: a')).target).toBe(at)
    expect(refused(h11(`${at}b`, 'Host: a'))).toEqual([414, 'request-target too long'])
  })

  test('a request line with no spaces longer than the target limit → 414, not 400', () => {
    expect(refused(`${'A'.repeat(LIMITS.maxRequestTargetBytes + 10)}\r\nHost: a\r\n\r\n`)).toEqual([414, 'request-target too long'])
  })

  test('field block over the limit → 431', () => {
    const big = `X-Big: ${'b'.repeat(LIMITS.maxHeaderBytes)}`
    expect(refused(h11('/', 'Host: a', big))).toEqual([431, 'request header fields too large'])
    const fits = `X-Big: ${'b'.repeat(LIMITS.maxHeaderBytes - 40)}`
    expect(ok(h11('/', 'Host: a', fits)).values[1]).toBe('b'.repeat(LIMITS.maxHeaderBytes - 40))
  })

  test('incompleteHeadError: a request line still arriving past the target limit → 414', () => {
    expect(incompleteHeadError(`GET /${'a'.repeat(LIMITS.maxRequestTargetBytes)}`, LIMITS)).toBeUndefined()
    const err = incompleteHeadError(`GET /${'a'.repeat(LIMITS.maxRequestTargetBytes + 64)}`, LIMITS)
    expect(err).toBeInstanceOf(RequestHeadError)
    expect([err!.status, err!.reason]).toEqual([414, 'request-target too long'])
  })

  test('incompleteHeadError: fields still arriving past the header limit → 431', () => {
    expect(incompleteHeadError('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1', LIMITS)).toBeUndefined()
    const err = incompleteHeadError(`GET / HTTP/1.1\r\nHost: a\r\nX-A: ${'x'.repeat(LIMITS.maxHeaderBytes)}`, LIMITS)
    expect([err?.status, err?.reason]).toEqual([431, 'request header fields too large'])
  })
})

describe('field reads (the head as FieldReader and MatchInput)', () => {
  const head = ok(
    h11('/', 'Host: a', 'Accept: text/html', 'X-Tenant: t1', 'accept: application/json', 'Cookie: a=1', 'cookie: b=2', 'X-Empty:', 'ACCEPT: */*'),
  )
  const fields = head

  test('repeated fields read as one comma-joined value, in order, whatever their case', () => {
    expect(fields.get('accept')).toBe('text/html, application/json, */*')
  })

  test('cookies join with "; "', () => {
    expect(fields.get('cookie')).toBe('a=1; b=2')
  })

  test('single, empty and absent fields', () => {
    expect(fields.get('x-tenant')).toBe('t1')
    expect(fields.get('x-empty')).toBe('')
    expect(fields.get('x-missing')).toBeNull()
    expect(fields.has('x-empty')).toBe(true)
    expect(fields.has('x-missing')).toBe(false)
  })

  test('query parameters, parsed on first use', () => {
    const withQuery = ok(h11('/p?a=1&b=two&a=3', 'Host: a'))
    expect([withQuery.queryParam('a'), withQuery.queryParam('b'), withQuery.queryParam('c')]).toEqual(['1', 'two', undefined])
    expect(ok(h11('/p', 'Host: a')).queryParam('a')).toBeUndefined()
  })
})
