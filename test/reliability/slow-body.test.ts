/**
 * Slow request bodies (issue 21): the wait for the upstream's response starts when the request
 * body has gone upstream, so an upload slower than the upstream timeout still succeeds; the
 * whole-body deadline (--body-timeout) governs slow uploads, and a client that stalls mid-body
 * past it gets 408 (the client was the slow party) and its upstream request is aborted. Both the
 * direct path and the pipeline path (a rule with a header-modifier filter). Raw sockets.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from '../front/support/backend.ts'
import { startFront, type Front } from '../front/support/gateway.ts'

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const filter = [{ type: 'RequestHeaderModifier' as const, set: [['x-f', '1']] as [string, string][], add: [], remove: [] }]
const routes = () => [port(0, [listener([vhost('*', [rule({ match: prefix('/filtered'), filters: filter }), rule({ match: prefix('/') })])])])]

let be: RawBackend
let stallBe: RawBackend
/** Upstream timeout 1 s, body timeout 10 s. */
let gw: Front
/** Upstream timeout 1 s, body timeout 1.5 s. */
let strict: Front

beforeAll(async () => {
  be = startRawBackend((r, c) => {
    // A backend that takes the whole request and never answers.
    if (!r.target.endsWith('/hang')) c.write(ok(`${r.method} ${r.target} ${r.body.length}`))
  })
  stallBe = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target} ${r.body.length}`)))
  gw = await startFront(snapshot(routes(), [pool('p1', [be.port])]), { upstreamTimeoutMs: 1000, bodyTimeoutMs: 10_000 })
  // Streamed bodies (no request buffering): the backend sees the stalled request and must see it aborted.
  strict = await startFront(snapshot(routes(), [pool('p1', [stallBe.port])]), { upstreamTimeoutMs: 1000, bodyTimeoutMs: 1500, requestBufferBytes: 0 })
})

afterAll(async () => {
  await gw.stop()
  await strict.stop()
  be.stop()
  stallBe.stop()
})

function connect(p: number): Promise<{ s: net.Socket; response: Promise<{ text: string; elapsed: number }> }> {
  return new Promise((resolve) => {
    const s = net.connect({ port: p, host: '127.0.0.1' })
    s.on('error', () => {})
    const t0 = performance.now()
    const response = new Promise<{ text: string; elapsed: number }>((done) => {
      let text = ''
      const finish = () => done({ text, elapsed: performance.now() - t0 })
      s.on('data', (d) => {
        text += d.toString('latin1')
        const end = text.indexOf('\r\n\r\n')
        const m = /content-length: (\d+)\r\n/i.exec(text)
        if (end >= 0 && m && text.length - (end + 4) >= Number(m[1])) finish()
      })
      s.once('close', finish)
      setTimeout(finish, 15_000)
    })
    s.once('connect', () => resolve({ s, response }))
  })
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)

for (const [name, path] of [
  ['direct', '/upload'],
  ['pipeline', '/filtered/upload'],
] as const) {
  describe(`${name} path`, () => {
    test('an upload trickled over 3 s, upstream timeout 1 s: 200', async () => {
      const { s, response } = await connect(gw.port)
      s.write(`POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n`)
      for (let i = 0; i < 30; i++) {
        await Bun.sleep(100)
        s.write('x')
      }
      const r = await response
      s.destroy()
      expect(statusOf(r.text)).toBe(200)
      expect(r.text).toEndWith(`POST ${path} 30`)
    }, 20_000)

    test('a chunked upload trickled over 3 s, upstream timeout 1 s: 200', async () => {
      const { s, response } = await connect(gw.port)
      s.write(`POST ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n`)
      for (let i = 0; i < 15; i++) {
        await Bun.sleep(200)
        s.write('2\r\nxy\r\n')
      }
      s.write('0\r\n\r\n')
      const r = await response
      s.destroy()
      expect(statusOf(r.text)).toBe(200)
      expect(r.text).toEndWith(`POST ${path} 30`)
    }, 20_000)

    test('a whole body sent, then no answer: 504 after the upstream timeout', async () => {
      const { s, response } = await connect(gw.port)
      s.write(`POST ${path.replace('upload', 'hang')} HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n`)
      await Bun.sleep(800)
      s.write('0123456789')
      const r = await response
      s.destroy()
      expect(statusOf(r.text)).toBe(504)
      // Counted from the body's end (0.8 s in), not from the head.
      expect(r.elapsed).toBeGreaterThan(1700)
      expect(r.elapsed).toBeLessThan(4000)
    }, 20_000)

    test('a client stalling mid-body past the body timeout: 408, upstream request aborted', async () => {
      const { s, response } = await connect(strict.port)
      s.write(`POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789`)
      await Bun.sleep(700)
      const openDuring = stallBe.open()
      const r = await response
      expect(statusOf(r.text)).toBe(408)
      // Not the upstream's 504 at 1 s: the body deadline (1.5 s) decided.
      expect(r.elapsed).toBeGreaterThan(1400)
      s.destroy()
      await Bun.sleep(300)
      expect(openDuring).toBeGreaterThan(0)
      expect(stallBe.open()).toBeLessThan(openDuring)
      expect(stallBe.requests.filter((q) => q.target === path).length).toBe(0)
    }, 20_000)
  })
}
