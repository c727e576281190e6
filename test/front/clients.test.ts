/**
 * Slow and odd clients against the front: half-close after a request, heads dribbled byte by
 * byte, leading empty lines, deep pipelines, uploads over the body limit, clients that vanish
 * mid-response, the header and keep-alive deadlines, and overload shedding (including that the
 * in-flight count comes back to zero after every kind of ending).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { exchange } from '../reliability/support/raw.ts'
import { ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { header, RawClient, req } from './support/client.ts'
import { startFront, type Front } from './support/gateway.ts'

let be: RawBackend
let gw: Front

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })

beforeAll(async () => {
  be = startRawBackend((r, c) => {
    const path = r.target.split('?')[0]!
    if (path.includes('/slow')) return void setTimeout(() => c.write(ok(`${r.method} ${r.target}`)), 400)
    if (path === '/hole') return
    if (path === '/large') return c.write(ok('L'.repeat(2 * 1024 * 1024)))
    c.write(ok(`${r.method} ${r.target} ${r.body.length}`))
  })
  gw = await startFront(
    simple(0, [
      rule({ match: prefix('/limited'), maxBodyBytes: 1000 }),
      rule({ match: prefix('/inner-limited'), maxBodyBytes: 1000, filters: [{ type: 'RequestHeaderModifier', set: [['x-f', '1']], add: [], remove: [] }] }),
      rule({ match: prefix('/filtered'), filters: [{ type: 'RequestHeaderModifier', set: [['x-f', '1']], add: [], remove: [] }] }),
      rule({ match: prefix('/hole'), timeouts: { requestMs: 200 } }),
      rule({ match: prefix('/') }),
    ], [pool('p1', [be.port])]),
    { maxConcurrentRequests: 2, headerTimeoutMs: 400, keepAliveIdleSeconds: 1 },
  )
})

afterAll(async () => {
  await gw.stop()
  be.stop()
})

/** A chunked body of `total` payload bytes in `chunk`-sized chunks. */
function chunked(total: number, chunk = 256): string {
  let out = ''
  for (let sent = 0; sent < total; sent += chunk) {
    const n = Math.min(chunk, total - sent)
    out += `${n.toString(16)}\r\n${'x'.repeat(n)}\r\n`
  }
  return `${out}0\r\n\r\n`
}

describe('half-close', () => {
  test('a client that shuts its write side after a full request still gets the response (direct and inner)', async () => {
    for (const path of ['/half/direct', '/filtered/half']) {
      const c = await RawClient.connect(gw.port)
      c.write(req('GET', path))
      c.shutdown()
      const res = await c.readResponse()
      expect([res.status, res.body]).toEqual([200, `GET ${path} 0`])
      expect(await c.waitClosed(1000)).toBe(true)
    }
  })

  test('half-close after a request whose answer is slow', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/slow/half'))
    c.shutdown()
    const res = await c.readResponse({ timeoutMs: 2000 })
    expect([res.status, res.body]).toEqual([200, 'GET /slow/half'])
    expect(await c.waitClosed(1000)).toBe(true)
  })

  test('half-close after a request with a body', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/half/body', 'Content-Length: 5') + 'hello')
    c.shutdown()
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([200, 'POST /half/body 5'])
  })

  test('half-close after two pipelined requests: both are answered', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/half/p1') + req('GET', '/half/p2'))
    c.shutdown()
    const first = await c.readResponse()
    const second = await c.readResponse().catch((e: Error) => ({ status: 0, body: e.message.slice(0, 60) }))
    expect([first.status, first.body]).toEqual([200, 'GET /half/p1 0'])
    expect([second.status, second.body]).toEqual([200, 'GET /half/p2 0'])
  })

  test('half-close in the middle of a head → 400 and close', async () => {
    const c = await RawClient.connect(gw.port)
    c.write('GET /half/partial HTTP/1.1\r\nHost: app')
    c.shutdown()
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([400, 'incomplete request\n'])
    expect(await c.waitClosed(1000)).toBe(true)
  })
})

describe('dribbled and pipelined input', () => {
  test('a head sent a few bytes at a time', async () => {
    // Three bytes per write: every split point kind (inside the request line, a name, CRLF)
    // comes up, and the whole head still arrives well within the 400 ms header timeout on a
    // loaded machine (one byte per write took 450 ms under CI load).
    const head = req('GET', '/dribble', 'Connection: close')
    const bytes = Array.from({ length: Math.ceil(head.length / 3) }, (_, i) => head.slice(i * 3, i * 3 + 3))
    const res = await exchange(gw.port, bytes, { gapMs: 1, waitMs: 1500 })
    expect(res.closed).toBe(true)
    expect(res.statuses).toEqual([200])
    expect(res.text.endsWith('GET /dribble 0')).toBe(true)
  })

  test('empty lines before a request line are ignored', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(`\r\n\r\n${req('GET', '/after-empty')}\r\n${req('GET', '/after-empty-2')}`)
    const a = await c.readResponse()
    const b = await c.readResponse()
    c.destroy()
    expect([a.body, b.body]).toEqual(['GET /after-empty 0', 'GET /after-empty-2 0'])
  })

  test('300 pipelined requests (over 64 KiB) behind a slow one: all answered, in order', async () => {
    const c = await RawClient.connect(gw.port)
    let batch = req('GET', '/slow/first')
    for (let i = 0; i < 300; i++) batch += req('GET', `/pipelined/${i}`, `X-Pad: ${'p'.repeat(200)}`)
    expect(batch.length).toBeGreaterThan(64 * 1024)
    c.write(batch)
    const bodies: string[] = []
    for (let i = 0; i <= 300; i++) bodies.push((await c.readResponse({ timeoutMs: 4000 })).body)
    c.destroy()
    expect(bodies).toEqual(['GET /slow/first', ...Array.from({ length: 300 }, (_, i) => `GET /pipelined/${i} 0`)])
  })
})

describe('request body limit', () => {
  test('a chunked upload over the rule limit → 413 and close (direct path)', async () => {
    const before = be.requests.length
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/limited/up', 'Transfer-Encoding: chunked'))
    c.write(chunked(4000).slice(0, 3000))
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([413, 'request body too large\n'])
    expect(header(res, 'connection')).toBe('close')
    expect(await c.waitClosed(1000)).toBe(true)
    // The backend saw a head and part of a body, never a complete request.
    expect(be.requests.length).toBe(before)
  })

  test('a chunked upload under the limit passes (direct path)', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/limited/up-ok', 'Transfer-Encoding: chunked') + chunked(1000))
    const res = await c.readResponse()
    c.destroy()
    expect([res.status, res.body]).toEqual([200, 'POST /limited/up-ok 1000'])
  })

  test('a chunked upload over the rule limit → 413 and close (inner path)', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/inner-limited/up', 'Transfer-Encoding: chunked') + chunked(4000))
    const res = await c.readResponse()
    expect(res.status).toBe(413)
    expect(await c.waitClosed(1000)).toBe(true)
  })

  test('an invalid chunked body → 400 and close', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(`${req('POST', '/bad-chunks', 'Transfer-Encoding: chunked')}zz\r\nhello\r\n0\r\n\r\n`)
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([400, 'invalid chunked body\n'])
    expect(await c.waitClosed(1000)).toBe(true)
  })
})

describe('deadlines', () => {
  test('a head that does not complete within the header timeout → 408 and close', async () => {
    const res = await exchange(gw.port, 'GET /slowloris HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n', { waitMs: 2000 })
    expect(res.statuses).toEqual([408])
    expect(res.text.endsWith('request header timeout\n')).toBe(true)
    expect(res.closed).toBe(true)
    // The sweep runs every 100 ms and its clock is as coarse: ±100 ms around the 400 ms.
    expect(res.ms).toBeGreaterThanOrEqual(290)
    expect(res.ms).toBeLessThan(1000)
  })

  test('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/idle'))
    await c.readResponse()
    const started = Date.now()
    expect(await c.waitClosed(2500)).toBe(true)
    const ms = Date.now() - started
    expect(ms).toBeGreaterThanOrEqual(900)
    expect(ms).toBeLessThan(2000)
  })
})

describe('vanishing clients', () => {
  test('a client gone mid-response: the next request to the same backend is served normally', async () => {
    const a = await RawClient.connect(gw.port)
    a.write(req('GET', '/large'))
    const deadline = Date.now() + 2000
    while (a.unread.length < 1000 && Date.now() < deadline) await Bun.sleep(5)
    a.destroy()
    await Bun.sleep(50)
    const b = await RawClient.connect(gw.port)
    b.write(req('GET', '/after-vanish'))
    const res = await b.readResponse()
    b.destroy()
    expect([res.status, res.body]).toEqual([200, 'GET /after-vanish 0'])
  })
})

describe('overload shedding (maxConcurrentRequests 2)', () => {
  test('a third concurrent request gets 503 + close; capacity comes back afterwards', async () => {
    const slow = await Promise.all([RawClient.connect(gw.port), RawClient.connect(gw.port)])
    slow[0]!.write(req('GET', '/slow/1'))
    slow[1]!.write(req('GET', '/slow/2'))
    await Bun.sleep(100)
    const third = await RawClient.connect(gw.port)
    third.write(req('GET', '/third'))
    const shed = await third.readResponse()
    expect([shed.status, shed.body]).toEqual([503, 'overloaded\n'])
    expect(header(shed, 'connection')).toBe('close')
    expect(await third.waitClosed(1000)).toBe(true)
    const done = await Promise.all(slow.map((c) => c.readResponse({ timeoutMs: 2000 })))
    expect(done.map((r) => r.status)).toEqual([200, 200])
    for (const c of slow) c.destroy()
    const after = await RawClient.connect(gw.port)
    after.write(req('GET', '/after-overload'))
    expect((await after.readResponse()).status).toBe(200)
    after.destroy()
  })

  test('shedding the second request of a keep-alive connection whose first was direct: a clean 503, no handler crash', async () => {
    const mark = gw.logs.length
    const hog = await RawClient.connect(gw.port)
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/first-direct'))
    expect((await c.readResponse()).status).toBe(200)
    hog.write(req('GET', '/slow/hog'))
    // Two in flight: the hog and the one below; a third would be shed, so take one slot more.
    const other = await RawClient.connect(gw.port)
    other.write(req('GET', '/slow/other'))
    await Bun.sleep(100)
    c.write(req('GET', '/second'))
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([503, 'overloaded\n'])
    expect(await c.waitClosed(1000)).toBe(true)
    await hog.readResponse({ timeoutMs: 2000 })
    await other.readResponse({ timeoutMs: 2000 })
    hog.destroy()
    other.destroy()
    expect(gw.errors(mark)).toEqual([])
  })

  test('the in-flight count returns to zero after every kind of ending', async () => {
    // Each of these ends an exchange differently; a leaked in-flight slot would shed what follows.
    const endings = await Promise.all([
      exchange(gw.port, 'GET / HTTP/1.1\r\n\r\n'), // 400 (no Host)
      exchange(gw.port, `${req('POST', '/limited/x', 'Content-Length: 5000')}${'x'.repeat(5000)}`), // 413 by length
    ])
    endings.push(await exchange(gw.port, req('POST', '/limited/y', 'Transfer-Encoding: chunked') + chunked(4000))) // 413 mid-body
    endings.push(await exchange(gw.port, req('GET', '/hole', 'Connection: close'))) // 504
    endings.push(await exchange(gw.port, req('GET', '/filtered/z', 'Connection: close'))) // inner path
    endings.push(await exchange(gw.port, req('GET', '/half/1') + req('GET', '/half/2', 'Connection: close'))) // pipelined
    expect(endings.map((e) => e.statuses)).toEqual([[400], [413], [413], [504], [200], [200, 200]])
    await exchange(gw.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', { waitMs: 100 }) // h2c tunnel, client leaves
    await exchange(gw.port, req('GET', '/slow/abandoned'), { waitMs: 50 }) // client leaves before the answer
    await exchange(gw.port, req('GET', '/filtered/slow-abandoned'), { waitMs: 50 })
    await Bun.sleep(450)
    // Both slots free again: two concurrent requests are served, not shed.
    const pair = await Promise.all([exchange(gw.port, req('GET', '/slow/a', 'Connection: close')), exchange(gw.port, req('GET', '/slow/b', 'Connection: close'))])
    expect(pair.map((p) => p.statuses)).toEqual([[200], [200]])
  })
})
