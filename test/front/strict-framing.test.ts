/**
 * Strict framing at the front (issue 21): heads whose lines end in a bare LF or a bare CR are
 * answered 400 at once (not left to the header deadline), and a Transfer-Encoding that is not
 * exactly a comma list of tokens is 400 (a well-formed list of codings we do not implement is
 * 501), so no framing a backend could read differently ever goes on. Raw sockets throughout.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { startFront, type Front } from './support/gateway.ts'

let be: RawBackend
let gw: Front

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const filter = [{ type: 'RequestHeaderModifier' as const, set: [['x-f', '1']] as [string, string][], add: [], remove: [] }]

beforeAll(async () => {
  be = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target} ${r.body.length}`)))
  gw = await startFront(
    snapshot(
      [port(0, [listener([vhost('*', [rule({ match: prefix('/filtered'), filters: filter }), rule({ match: prefix('/') })])])])],
      [pool('p1', [be.port])],
    ),
    // A long header deadline: an answer that waits for it would show as a timeout here.
    { headerTimeoutMs: 20_000 },
  )
})

afterAll(async () => {
  await gw.stop()
  be.stop()
})

/** Send `bytes` (latin1), read until the connection closes or `ms` passes. */
function exchange(bytes: string, ms = 3000): Promise<{ text: string; closed: boolean; elapsed: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const s = net.connect({ port: gw.port, host: '127.0.0.1', allowHalfOpen: true })
    let text = ''
    let settled = false
    const done = (closed: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      s.destroy()
      resolve({ text, closed, elapsed: performance.now() - t0 })
    }
    const timer = setTimeout(() => done(false), ms)
    s.on('error', () => done(true))
    s.on('data', (d) => (text += d.toString('latin1')))
    s.once('end', () => done(true))
    s.once('close', () => done(true))
    s.once('connect', () => s.write(Buffer.from(bytes, 'latin1')))
  })
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)

describe('bare line ends', () => {
  const cases: [string, string][] = [
    ['all lines end in LF', 'GET / HTTP/1.1\nHost: a\n\n'],
    ['the request line ends in LF', 'GET / HTTP/1.1\nHost: a\r\n\r\n'],
    ['a field line ends in LF', 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n'],
    ['the blank line is a bare LF', 'GET / HTTP/1.1\r\nHost: a\r\n\n'],
    ['all lines end in CR', 'GET / HTTP/1.1\rHost: a\r\r'],
    ['a field line ends in CR', 'GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n'],
    ['a POST with LF lines and a body', 'POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc'],
  ]
  for (const [name, bytes] of cases) {
    test(`${name}: 400 at once, then close`, async () => {
      const before = be.requests.length
      const r = await exchange(bytes)
      expect(statusOf(r.text)).toBe(400)
      expect(r.closed).toBe(true)
      expect(r.elapsed).toBeLessThan(2000)
      expect(be.requests.length).toBe(before)
    })
  }

  test('a CRLF split between writes is not a bare CR', async () => {
    const r = await new Promise<string>((resolve) => {
      const s = net.connect({ port: gw.port, host: '127.0.0.1' })
      let text = ''
      s.on('data', (d) => {
        text += d.toString('latin1')
        if (text.includes('\r\n\r\n') && /GET \/split 0$/.test(text)) {
          s.destroy()
          resolve(text)
        }
      })
      s.once('connect', async () => {
        s.write('GET /split HTTP/1.1\r')
        await Bun.sleep(50)
        s.write('\nHost: a\r')
        await Bun.sleep(50)
        s.write('\n\r')
        await Bun.sleep(50)
        s.write('\n')
      })
      setTimeout(() => resolve(text), 3000)
    })
    expect(statusOf(r)).toBe(200)
  })
})

describe('Transfer-Encoding', () => {
  const body = '3\r\nabc\r\n0\r\n\r\n'
  const post = (te: string, path = '/') => `POST ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:${te}\r\n\r\n${body}`
  const refused: [string, string, number][] = [
    ['obs-text (NBSP) around chunked', ' \xa0chunked\xa0', 400],
    ['NBSP after chunked', ' chunked\xa0', 400],
    ['obs-text inside the coding', ' ch\xfcnked', 400],
    ['chunked, identity', ' chunked, identity', 400],
    ['an empty element first', ' , chunked', 400],
    ['an empty element last', ' chunked,', 400],
    ['an empty element between', ' gzip,,chunked', 400],
    ['a parameter', ' chunked;q=1', 400],
    ['a quoted coding', ' "chunked"', 400],
    ['an empty value', '', 400],
    ['a vertical tab around the coding', ' \x0bchunked', 400],
    ['chunked twice', ' chunked, chunked', 400],
    ['an unknown coding', ' gzip', 501],
    ['an unknown coding before chunked', ' gzip, chunked', 501],
    ['identity alone', ' identity', 501],
  ]
  for (const [name, te, status] of refused) {
    for (const path of ['/', '/filtered']) {
      test(`${name} (${path === '/' ? 'direct' : 'pipeline'}): ${status}, nothing forwarded`, async () => {
        const before = be.requests.length
        const r = await exchange(post(te, path))
        expect(statusOf(r.text)).toBe(status)
        expect(r.closed).toBe(true)
        expect(be.requests.length).toBe(before)
      })
    }
  }

  test('a second, empty Transfer-Encoding line: 400', async () => {
    const r = await exchange(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n${body}`)
    expect(statusOf(r.text)).toBe(400)
  })

  const accepted: [string, string][] = [
    ['chunked', ' chunked'],
    ['Chunked with OWS around it', '\t Chunked \t'],
    ['CHUNKED without a space', 'CHUNKED'],
  ]
  for (const [name, te] of accepted) {
    for (const path of ['/', '/filtered']) {
      test(`${name} (${path === '/' ? 'direct' : 'pipeline'}): forwarded with its body, framed once`, async () => {
        const before = be.requests.length
        const r = await exchange(post(te, path).replace('Host: a\r\n', 'Host: a\r\nConnection: close\r\n'))
        expect(statusOf(r.text)).toBe(200)
        expect(r.text).toEndWith(`POST ${path} 3`)
        const seen = be.requests.slice(before)
        expect(seen.length).toBe(1)
        // Whatever went on says its framing one way only: never a raw or second Transfer-Encoding.
        const raw = seen[0]!.head
        const tes = [...raw.matchAll(/^transfer-encoding:(.*)$/gim)].map((m) => m[1]!.trim())
        const cls = [...raw.matchAll(/^content-length:(.*)$/gim)]
        expect(tes.length + cls.length).toBe(1)
        if (tes.length === 1) expect(tes[0]).toBe('chunked')
      })
    }
  }
})
