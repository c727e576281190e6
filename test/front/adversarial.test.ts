/**
 * Regression tests from an adversarial review of the HTTP front (raw-socket probes and seeded
 * fuzzing). One test per bug found; each asserts the correct behaviour and fails on the code as
 * reviewed. Grouped by what goes wrong: bytes the front reads as a request when they are not one
 * (a client backlogged by its own unread answers), requests answered wrongly or never, request
 * bodies whose framing the front passes on although the inner Bun.serve or a backend reads them
 * differently, and request-targets routed on another path or host than the one the request names.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { forwardTo, listener, pool, port, rule, simple, snapshot, vhost } from '../dataplane/ir.ts'
import { startWsBackend } from '../websocket/support/ws-backend.ts'
import { ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { RawClient, req } from './support/client.ts'
import { startFront, type Front } from './support/gateway.ts'
import { memoryProbe } from './support/memory.ts'

/** Size of the answers used to fill a client's socket buffers: small enough to come in one read. */
const K16 = 16 * 1024

let be: RawBackend
let bx: RawBackend
let gw: Front

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const filter = [{ type: 'RequestHeaderModifier' as const, set: [['x-f', '1']] as [string, string][], add: [], remove: [] }]

beforeAll(async () => {
  be = startRawBackend((r, c) => {
    const path = r.target.split('?')[0]!
    if (path.startsWith('/k16')) return c.write(ok('k'.repeat(K16)))
    c.write(ok(`${r.method} ${r.target} ${r.body.length}`))
  })
  bx = startRawBackend((r, c) => c.write(ok(`X ${r.method} ${r.target}`)))
  gw = await startFront(
    snapshot(
      [
        port(0, [
          listener([
            vhost('x.test', [rule({ match: prefix('/'), action: forwardTo('px') })]),
            vhost('*', [
              rule({ match: prefix('/admin'), action: { kind: 'respond', status: 403, body: 'denied' } }),
              rule({ match: { path: { type: 'Exact', value: '/exact' } }, action: { kind: 'respond', status: 403, body: 'denied' } }),
              rule({ match: prefix('/filtered'), filters: filter }),
              rule({ match: prefix('/limited'), maxBodyBytes: 1000 }),
              rule({ match: prefix('/') }),
            ]),
          ]),
        ]),
      ],
      [pool('p1', [be.port]), pool('px', [bx.port])],
    ),
  )
})

afterAll(async () => {
  await gw.stop()
  be.stop()
  bx.stop()
})

/** A client that does not read until told to. */
async function silentClient(p: number): Promise<net.Socket> {
  const s = net.connect({ port: p, host: '127.0.0.1', allowHalfOpen: true })
  s.pause()
  s.on('error', () => {})
  await new Promise((resolve) => s.once('connect', resolve))
  return s
}

/** Read everything the socket delivers until it closes, `ms` passes, or `until` holds for what was read. */
function drain(s: net.Socket, ms: number, until?: (text: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = ''
    const done = (closed: boolean) => {
      clearTimeout(timer)
      resolve({ text, closed })
    }
    const timer = setTimeout(() => done(false), ms)
    s.on('data', (d) => {
      text += d.toString('latin1')
      if (until?.(text)) done(false)
    })
    s.once('close', () => done(true))
    s.once('end', () => done(true))
    s.resume()
  })
}

const statusesOf = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))
const targetsSeen = (b: RawBackend, since: number) => b.requests.slice(since).map((r) => r.target)

describe('a client backlogged by its own unread answers', () => {
  test('the body of a request refused with 413 is never parsed as a request', async () => {
    const start = be.requests.length
    const s = await silentClient(gw.port)
    // One request per write until the client's socket buffers are full of unread answers.
    for (let i = 0; i < 600; i++) {
      s.write(req('GET', `/k16/${i}`))
      await Bun.sleep(2)
    }
    await Bun.sleep(200)
    // Refused by its Content-Length (rule limit 1000): the connection must close after the 413,
    // and the body, whatever it looks like, is not a request.
    s.write(`${req('POST', '/limited/upload', 'Content-Length: 5000')}${req('GET', '/smuggled-in-body')}`)
    await Bun.sleep(300)
    // Nor is anything the client sends after a request the front answered with a close.
    s.write(req('GET', '/after-413'))
    await Bun.sleep(300)
    const { text, closed } = await drain(s, 5000)
    s.destroy()
    expect(targetsSeen(be, start).filter((t) => !t.startsWith('/k16/'))).toEqual([])
    expect(statusesOf(text).at(-1)).toBe(413)
    expect(closed).toBe(true)
  }, 20_000)

  test('a client that never reads and sends one request per write is not served without bound', async () => {
    const start = be.requests.length
    const memory = await memoryProbe()
    const s = await silentClient(gw.port)
    const sent = 3000
    try {
      // 3000 answers of 16 KiB: 48 MiB, more than the kernel holds for a reader that reads nothing.
      for (let i = 0; i < sent; i++) {
        s.write(req('GET', `/k16/n${i}`))
        // A pause every few writes keeps them separate events without taking 3000 timer ticks
        // (which took over 30 s on a loaded CI machine).
        if (i % 10 === 9) await Bun.sleep(1)
      }
      await Bun.sleep(300)
    } finally {
      s.destroy()
    }
    const growthMiB = memory.stop()
    const served = be.requests.length - start
    // Once the client's buffers are full the front must stop serving it (as it does when the
    // same requests come pipelined in one write), not queue every answer in memory.
    expect(served).toBeLessThan(sent / 2)
    expect(growthMiB).toBeLessThan(24)
  }, 60_000)

  test('complete pipelined requests waiting for a slow reader are answered, not dropped with a 408', async () => {
    const start = be.requests.length
    const s = await silentClient(gw.port)
    let batch = ''
    for (let i = 0; i < 300; i++) batch += req('GET', `/k16/p${i}`)
    s.write(batch)
    // The client reads nothing for a while (well under the 10 s header timeout)...
    await Bun.sleep(700)
    // ...then reads everything.
    const { text } = await drain(s, 5000, (t) => statusesOf(t).length >= 300 && t.endsWith('k'.repeat(64)))
    s.destroy()
    const statuses = statusesOf(text)
    expect(statuses).not.toContain(408)
    expect(statuses.length).toBe(300)
    expect(be.requests.length - start).toBe(300)
  }, 20_000)
})

describe('a client that never reads', () => {
  test('a pipeliner that never takes its answers is dropped once the stream idle timeout passes, not held forever', async () => {
    const front = await startFront(simple(0, [rule({ match: prefix('/') })], [pool('p1', [be.port])]), { streamIdleSeconds: 1, keepAliveIdleSeconds: 1, headerTimeoutMs: 1000 })
    const s = await silentClient(front.port)
    try {
      let closedAt = 0
      s.on('close', () => (closedAt = Date.now()))
      let batch = ''
      for (let i = 0; i < 300; i++) batch += req('GET', `/k16/h${i}`)
      const started = Date.now()
      s.write(batch)
      // Its answers fill the socket buffers (MiBs of kernel memory per connection) and it reads
      // nothing: as for a response it does not take (Phase.Exchange), the connection must go.
      while (closedAt === 0 && Date.now() - started < 6000) await Bun.sleep(50)
      expect(closedAt === 0 ? 'still open after 6 s' : 'closed').toBe('closed')
    } finally {
      s.destroy()
      await front.stop()
    }
  }, 15_000)
})

describe('a client backlogged by its own unread answers, then half-closed', () => {
  test('complete pipelined requests waiting for a slow reader are still answered after its FIN, not dropped with a 400', async () => {
    // Header timeout off: the 408 above must not decide this one.
    const front = await startFront(simple(0, [rule({ match: prefix('/') })], [pool('p1', [be.port])]), { headerTimeoutMs: 0 })
    try {
      const start = be.requests.length
      const s = await silentClient(front.port)
      let batch = ''
      for (let i = 0; i < 300; i++) batch += req('GET', `/k16/f${i}`)
      s.write(batch)
      await Bun.sleep(500)
      // Everything was sent and every request is complete: the FIN says no more requests, not "incomplete".
      s.end()
      await Bun.sleep(200)
      const { text } = await drain(s, 5000)
      s.destroy()
      const statuses = statusesOf(text)
      expect(statuses.filter((status) => status !== 200)).toEqual([])
      expect(statuses.length).toBe(300)
      expect(be.requests.length - start).toBe(300)
    } finally {
      await front.stop()
    }
  }, 20_000)
})

describe('requests answered wrongly or never', () => {
  test('a request pipelined after a CONNECT is answered promptly (or the connection closed), never left hanging', async () => {
    const c = await RawClient.connect(gw.port)
    c.write('CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n' + req('GET', '/filtered/after-connect'))
    // Whatever the CONNECT gets (the front is no forward proxy), the next request must not wait
    // for the inner server's idle timeout (~16 s).
    const outcomes: string[] = []
    for (let i = 0; i < 2; i++) {
      const res = await c.readResponse({ timeoutMs: 3000 }).then(
        (r) => `${r.status} ${r.body}`,
        (err: Error) => (err.message.startsWith('timed out') ? 'timeout' : 'closed'),
      )
      outcomes.push(res)
      if (res === 'closed') break
    }
    c.destroy()
    expect(outcomes).not.toContain('timeout')
  }, 15_000)

  test('a client that half-closes in the middle of a request body: the exchange is abandoned at once', async () => {
    const openBefore = be.open()
    const c = await RawClient.connect(gw.port)
    c.write(`${req('POST', '/upload/truncated', 'Content-Length: 100')}hello`)
    await Bun.sleep(100)
    // FIN: the other 95 bytes can never come. The request is incomplete; holding the exchange,
    // its upstream connection and its in-flight slot until the 60 s upstream timeout is a leak.
    c.shutdown()
    const closed = await c.waitClosed(2000)
    c.destroy()
    await Bun.sleep(100)
    expect(closed).toBe(true)
    expect(be.open()).toBeLessThanOrEqual(openBefore)
  }, 10_000)

  test('a chunked request with a trailer field, on the inner path, gets the backend\'s answer (not the inner server\'s 400)', async () => {
    const start = be.requests.length
    const c = await RawClient.connect(gw.port)
    // Valid HTTP/1.1 (RFC 9112 §7.1.2); Bun.serve refuses any trailer section with a 400 and a close.
    c.write(`${req('POST', '/filtered/trailer', 'Transfer-Encoding: chunked')}5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n`)
    const res = await c.readResponse()
    c.destroy()
    // The backend got (and answered) the request: the client must see that answer.
    expect(targetsSeen(be, start)).toEqual(['/filtered/trailer'])
    expect([res.status, res.body]).toEqual([200, 'POST /filtered/trailer 5'])
  })
})

describe('direct WebSocket tunnels', () => {
  test('frame bytes pipelined behind the handshake are tracked: a gateway close still reaches the backend and ends the session', async () => {
    const ws = startWsBackend()
    const chat = rule({ match: prefix('/echo') })
    const other = rule({ match: prefix('/other') })
    const front = await startFront(simple(0, [chat, other], [pool('p1', [ws.port])], 1))
    try {
      // A masked text frame; the client sends its first 8 bytes with the handshake (no wait for the 101).
      const payload = Buffer.from('hello ws!!')
      const mask = Buffer.from([1, 2, 3, payload[3]! ^ 0xff])
      const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!))])
      const c = await RawClient.connect(front.port)
      c.write(Buffer.concat([Buffer.from(req('GET', '/echo', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13')), frame.subarray(0, 8)]))
      expect((await c.readResponse()).status).toBe(101)
      c.write(frame.subarray(8))
      const deadline = Date.now() + 2000
      while (!c.unread.includes('hello ws!!') && Date.now() < deadline) await Bun.sleep(10)
      expect(c.unread).toContain('hello ws!!')
      // The route goes away: 1012 both ways at frame boundaries, then both connections close.
      const backendClosed = ws.nextClose()
      await front.dp.apply(simple(0, [other], [pool('p1', [ws.port])], 2))
      const closed = await Promise.race([backendClosed, Bun.sleep(2000).then(() => 'no close frame reached the backend')])
      expect(closed).toEqual({ code: 1012, reason: 'route removed' })
      expect(await c.waitClosed(2000)).toBe(true)
      c.destroy()
    } finally {
      await front.stop()
      await ws.stop()
    }
  })
})

describe('chunked framing the front passes on although it is not RFC 9112', () => {
  test('a trailer section that is not field lines, or junk after a chunk size, is refused (400) and never forwarded', async () => {
    const cases = [
      // A request line where a trailer field should be: a parser that ends the body at "0\r\n" reads a second request.
      `${req('POST', '/strict/trailer', 'Transfer-Encoding: chunked')}5\r\nhello\r\n0\r\nGET /smuggled-trailer HTTP/1.1\r\nHost: app.test\r\n\r\n`,
      // chunk-size [ BWS ";" chunk-ext ]: "5 x" has no ";" (Bun.serve answers 400 to it).
      `${req('POST', '/strict/ext', 'Transfer-Encoding: chunked')}5 x\r\nhello\r\n0\r\n\r\n`,
    ]
    const answers: number[] = []
    const start = be.requests.length
    for (const bytes of cases) {
      const c = await RawClient.connect(gw.port)
      c.write(bytes)
      const res = await c.readResponse().catch(() => undefined)
      c.destroy()
      answers.push(res?.status ?? 0)
    }
    expect(answers).toEqual([400, 400])
    expect(targetsSeen(be, start)).toEqual([])
  })
})

describe('request-targets routed on another path or host than the request names', () => {
  test('absolute-form: the target\'s authority picks the virtual host, not the Host header', async () => {
    const startX = bx.requests.length
    const start = be.requests.length
    const c = await RawClient.connect(gw.port)
    // RFC 9112 §3.2.2: a server must ignore Host when the target is absolute; request-head.ts says so too.
    c.write('GET http://x.test/abs HTTP/1.1\r\nHost: app.test\r\n\r\n')
    const res = await c.readResponse()
    c.destroy()
    expect(res.body).toBe('X GET /abs')
    expect(targetsSeen(bx, startX)).toEqual(['/abs'])
    expect(targetsSeen(be, start)).toEqual([])
  })

  test('dot-segments: the direct path routes the path the inner server would route, so a rule cannot be bypassed', async () => {
    const start = be.requests.length
    const statuses: number[] = []
    // The inner Bun.serve reads each of these under /admin (req.url is WHATWG-normalised: dot-segments
    // resolved, "\\" read as "/"); so do many backends.
    for (const target of ['/public/../admin', '/./admin', '/public/%2e%2e/admin', '/public\\..\\admin', '/admin\\x']) {
      const c = await RawClient.connect(gw.port)
      c.write(req('GET', target))
      const res = await c.readResponse().catch(() => undefined)
      c.destroy()
      statuses.push(res?.status ?? 0)
    }
    // 403 from the /admin rule (normalised like the inner server does), or 400 (refused): not the backend.
    expect(statuses.filter((status) => status !== 400 && status !== 403)).toEqual([])
    expect(targetsSeen(be, start)).toEqual([])
  })

  test('a fragment in the request-target is refused, not matched literally while backends drop it', async () => {
    const start = be.requests.length
    const c = await RawClient.connect(gw.port)
    // RFC 9112 §3.2: origin-form is absolute-path [ "?" query ], no "#". Backends read /exact#x as /exact.
    c.write(req('GET', '/exact#x'))
    const res = await c.readResponse().catch(() => undefined)
    c.destroy()
    expect([res?.status].filter((status) => status !== 400 && status !== 403)).toEqual([])
    expect(targetsSeen(be, start)).toEqual([])
  })
})
