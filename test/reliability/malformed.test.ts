/**
 * Malformed HTTP over raw sockets: every case gets its standard status and never reaches the
 * backend (a recording echo server counts what arrives). Portico's own HTTP/1.1 parser answers
 * all of them (http/front/request-head.ts), before routing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { exchange, get } from './support/raw.ts'
import { startGateway, type Gateway } from './support/gateway.ts'

/** A backend that records raw request heads (Bun.serve would itself choke on an empty Host) and answers 200. */
async function rawBackend() {
  const heads: string[] = []
  const server = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(socket, data) {
        const text = Buffer.from(data).toString('latin1')
        if (!text.includes('\r\n\r\n')) return
        heads.push(text)
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      },
    },
  })
  return { port: server.port, heads, stop: () => server.stop(true) }
}

let echo: EchoUpstream
let gw: Gateway

beforeAll(async () => {
  echo = startEcho('backend')
  gw = await startGateway(simple(0, [rule()], [pool('p1', [echo.port])]))
})

afterAll(async () => {
  await gw.stop()
  await echo.stop()
})

const POST = (headers: string, body = '') => `POST /upload HTTP/1.1\r\nHost: app.test\r\n${headers}\r\n${body}`

/** [name, bytes, status, who answers]. */
const CASES: [string, string, number][] = [
  ['Content-Length with Transfer-Encoding', POST('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), 400],
  ['two different Content-Lengths', POST('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), 400],
  // Bun merges identical ones into "5, 5", which no backend parses: refused like nginx does.
  ['two identical Content-Lengths', POST('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), 400],
  ['Content-Length not a number', POST('Content-Length: abc\r\n', 'hello'), 400],
  ['Content-Length with a sign', POST('Content-Length: +5\r\n', 'hello'), 400],
  ['Content-Length negative', POST('Content-Length: -1\r\n', 'hello'), 400],
  ['invalid chunk size', POST('Transfer-Encoding: chunked\r\n', 'zz\r\nhello\r\n0\r\n\r\n'), 400],
  ['chunk size overflowing 64 bits', POST('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), 400],
  ['chunk data not followed by CRLF', POST('Transfer-Encoding: chunked\r\n', '5\r\nhelloXX0\r\n\r\n'), 400],
  ['Transfer-Encoding twice', POST('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), 400],
  ['space before the colon of Transfer-Encoding', POST('Transfer-Encoding : chunked\r\n', '0\r\n\r\n'), 400],
  ['obs-fold', get('/x', 'X-A: one', ' two'), 400],
  ['bare CR in a header value', get('/x', 'X-A: a\rb'), 400],
  ['bare LF ending a header line', 'GET /x HTTP/1.1\r\nHost: app.test\nX-A: b\r\n\r\n', 400],
  ['NUL in a header value', get('/x', 'X-A: a\0b'), 400],
  ['control byte (0x01) in a header value', get('/x', 'X-A: a\x01b'), 400],
  ['DEL (0x7f) in a header value', get('/x', 'X-A: a\x7fb'), 400],
  ['space in a header name', get('/x', 'X A: b'), 400],
  ['header line without a colon', get('/x', 'XnoColon'), 400],
  ['invalid method token', 'G@T /x HTTP/1.1\r\nHost: app.test\r\n\r\n', 400],
  ['HTTP/1.1 without Host', 'GET /x HTTP/1.1\r\nX-A: b\r\n\r\n', 400],
  ['two Host headers', 'GET /x HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n', 400],
  ['Host with a space', 'GET /x HTTP/1.1\r\nHost: app test\r\n\r\n', 400],
  ['Host with userinfo', 'GET /x HTTP/1.1\r\nHost: user@app.test\r\n\r\n', 400],
  ['Host with a path', 'GET /x HTTP/1.1\r\nHost: app.test/evil\r\n\r\n', 400],
  // RFC 9112 §6.1: a coding the server does not implement is 501; chunked not last is 400.
  ['Transfer-Encoding: gzip', POST('Transfer-Encoding: gzip\r\n'), 501],
  ['Transfer-Encoding: gzip, chunked', POST('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n'), 501],
  ['Transfer-Encoding: identity', POST('Transfer-Encoding: identity\r\n'), 501],
  ['Transfer-Encoding: chunked, gzip (chunked not last)', POST('Transfer-Encoding: chunked, gzip\r\n', '0\r\n\r\n'), 400],
  ['Transfer-Encoding on HTTP/1.0', 'POST /x HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['HTTP/1.2', 'GET /x HTTP/1.2\r\nHost: app.test\r\n\r\n', 505],
  ['HTTP/2.0 in an HTTP/1 request line', 'GET /x HTTP/2.0\r\nHost: app.test\r\n\r\n', 505],
  ['HTTP/0.9 request line', 'GET /x\r\n\r\n', 400],
  ['control byte in the request-target', 'GET /x\x01y HTTP/1.1\r\nHost: app.test\r\n\r\n', 400],
  ['garbage version', 'GET /x HTTQ/1.1\r\nHost: app.test\r\n\r\n', 400],
  ['request-target of 9 KiB (limit 8 KiB)', get(`/${'a'.repeat(9 * 1024)}`), 414],
  ['request-target of 70 KiB', get(`/${'a'.repeat(70 * 1024)}`), 414],
  ['header block of 40 KiB (limit 32 KiB)', get('/x', `X-Big: ${'b'.repeat(40 * 1024)}`), 431],
  ['header block of 1 MiB arriving in one go', get('/x', `X-Big: ${'b'.repeat(1024 * 1024)}`), 431],
  ['Content-Length over the 100 MiB default', POST(`Content-Length: ${101 * 1024 * 1024}\r\n`, 'x'.repeat(100)), 413],
]

describe('malformed requests get the standard status and never reach the backend', () => {
  for (const [name, bytes, status] of CASES) {
    test(`${name} → ${status}`, async () => {
      const before = echo.requests.length
      const res = await exchange(gw.port, bytes)
      expect(res.statuses[0]).toBe(status)
      // Every one of these ends the connection: what follows on it cannot be trusted.
      expect(res.closed).toBe(true)
      await Bun.sleep(30)
      expect(echo.requests.length).toBe(before)
    })
  }

  test('the gateway still serves normally afterwards', async () => {
    const res = await exchange(gw.port, get('/ok', 'Connection: close'))
    expect(res.statuses).toEqual([200])
    expect(echo.requests.at(-1)?.path).toBe('/ok')
  })
})

describe('accepted oddities are routed, not crashed on', () => {
  test('HTTP/1.0 without Host is routed with an empty host and forwarded with an empty Host (RFC 9112 §3.2)', async () => {
    // Bun gives such requests a relative req.url, on which new URL() throws: the gateway must not.
    const raw = await rawBackend()
    const gw10 = await startGateway(simple(0, [rule()], [pool('p1', [raw.port])]))
    try {
      const res = await exchange(gw10.port, 'GET /old HTTP/1.0\r\n\r\n')
      expect(res.statuses).toEqual([200])
      expect(raw.heads[0]).toStartWith('GET /old HTTP/1.1\r\n')
      expect(raw.heads[0]).toMatch(/\r\nhost: \r\n/i)
    } finally {
      await gw10.stop()
      raw.stop()
    }
  })

  test('an h2c upgrade is never forwarded as an upgrade: the backend sees a plain request', async () => {
    const res = await exchange(gw.port, get('/h2c', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA', 'X-Keep: yes'))
    expect(res.statuses).toEqual([200])
    expect(res.text).not.toContain('101 Switching')
    const seen = echo.requests.at(-1)!
    expect(seen.path).toBe('/h2c')
    expect(seen.headers.upgrade).toBeUndefined()
    expect(seen.headers['http2-settings']).toBeUndefined()
    expect(seen.headers.connection ?? '').not.toMatch(/upgrade/i)
    expect(seen.headers['x-keep']).toBe('yes')
  })

  test('chunk extensions are accepted and stripped from the data', async () => {
    const res = await exchange(gw.port, POST('Transfer-Encoding: chunked\r\nConnection: close\r\n', '5;name=value\r\nhello\r\n0\r\n\r\n'))
    expect(res.statuses).toEqual([200])
    expect(echo.requests.at(-1)?.body).toBe('hello')
  })

  test('an absolute-form target is routed by its authority, which becomes the Host sent on (RFC 9112 §3.2.2)', async () => {
    const res = await exchange(gw.port, 'GET http://other.test/abs HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n')
    expect(res.statuses).toEqual([200])
    expect(echo.requests.at(-1)?.headers.host).toBe('other.test')
    expect(echo.requests.at(-1)?.path).toBe('/abs')
  })
})
