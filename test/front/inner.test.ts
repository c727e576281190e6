/**
 * The front's inner path: requests the front does not forward itself (filters, redirects,
 * HTTP/1.0, Expect, absolute-form, upgrades, h2c) go unchanged over the connection's own link to
 * the inner Bun.serve. They must share a keep-alive connection with direct requests (also
 * pipelined in one packet, answered in order) and the backend must see the real client address
 * on both paths.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { forwardTo, pool, rule, simple } from '../dataplane/ir.ts'
import { field, ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { header, RawClient, req } from './support/client.ts'
import { startFront, type Front } from './support/gateway.ts'

let be: RawBackend
let ws: Server<undefined>
let gw: Front

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })

beforeAll(async () => {
  be = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target}`, ['X-Backend: raw'])))
  ws = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch(request, server) {
      if (server.upgrade(request)) return undefined
      return new Response('not a websocket', { status: 400 })
    },
    websocket: {
      message(socket, message) {
        socket.send(`echo:${String(message)}`)
      },
    },
  })
  gw = await startFront(
    simple(0, [
      rule({ match: prefix('/filtered'), filters: [{ type: 'RequestHeaderModifier', set: [['x-filter', 'on']], add: [], remove: [] }] }),
      rule({ match: prefix('/old'), action: { kind: 'redirect', statusCode: 301, path: { type: 'ReplacePrefixMatch', value: '/new' } } }),
      rule({ match: prefix('/ws'), action: forwardTo('ws') }),
      rule({ match: prefix('/') }),
    ], [pool('p1', [be.port]), pool('ws', [ws.port!])]),
  )
})

afterAll(async () => {
  await gw.stop()
  be.stop()
  await ws.stop(true)
})

describe('direct and inner requests on one connection', () => {
  test('pipelined in one packet: answered in order, each by its own path', async () => {
    const c = await RawClient.connect(gw.port, { localAddress: '127.0.0.2' })
    const start = be.requests.length
    c.write(req('GET', '/d/1') + req('GET', '/filtered/1') + req('GET', '/old/x?y=1') + req('GET', '/d/2') + req('GET', '/filtered/2') + req('GET', '/d/3'))
    const answers = []
    for (let i = 0; i < 6; i++) answers.push(await c.readResponse())
    expect(answers.map((a) => a.status)).toEqual([200, 200, 301, 200, 200, 200])
    expect(answers.map((a) => a.body)).toEqual(['GET /d/1', 'GET /filtered/1', '', 'GET /d/2', 'GET /filtered/2', 'GET /d/3'])
    // IR port 0: the redirect names the bound port.
    expect(header(answers[2]!, 'location')).toBe(`http://app.test:${gw.port}/new/x?y=1`)
    // The redirect never reached the backend; the rest arrived in order.
    const seen = be.requests.slice(start)
    expect(seen.map((r) => r.target)).toEqual(['/d/1', '/filtered/1', '/d/2', '/filtered/2', '/d/3'])
    expect(seen.map((r) => field(r, 'x-filter') ?? '-')).toEqual(['-', 'on', '-', 'on', '-'])
    expect(c.closed).toBe(false)
    c.destroy()
  })

  test('interleaved one at a time on a keep-alive connection', async () => {
    const c = await RawClient.connect(gw.port)
    const bodies: string[] = []
    for (let i = 0; i < 5; i++) {
      for (const path of [`/d/i${i}`, `/filtered/i${i}`]) {
        c.write(req('GET', path))
        const res = await c.readResponse()
        expect(res.status).toBe(200)
        bodies.push(res.body)
      }
    }
    expect(bodies).toEqual([0, 1, 2, 3, 4].flatMap((i) => [`GET /d/i${i}`, `GET /filtered/i${i}`]))
    expect(c.closed).toBe(false)
    c.destroy()
  })

  test('a POST with a body on the inner path, then a direct GET, pipelined', async () => {
    const c = await RawClient.connect(gw.port)
    const start = be.requests.length
    c.write(req('POST', '/filtered/post', 'Content-Length: 7') + 'payload' + req('GET', '/d/after-post'))
    const first = await c.readResponse()
    const second = await c.readResponse()
    c.destroy()
    expect([first.status, first.body, second.status, second.body]).toEqual([200, 'POST /filtered/post', 200, 'GET /d/after-post'])
    expect(be.requests.slice(start).map((r) => [r.target, r.body])).toEqual([
      ['/filtered/post', 'payload'],
      ['/d/after-post', ''],
    ])
  })
})

describe('client address', () => {
  test('the backend sees the real client address in X-Forwarded-For on both paths', async () => {
    const c = await RawClient.connect(gw.port, { localAddress: '127.0.0.2' })
    const start = be.requests.length
    c.write(req('GET', '/d/xff') + req('GET', '/filtered/xff') + req('GET', '/d/xff2', 'X-Forwarded-For: 10.1.1.1') + req('GET', '/filtered/xff2', 'X-Forwarded-For: 10.1.1.1'))
    for (let i = 0; i < 4; i++) await c.readResponse()
    c.destroy()
    const seen = be.requests.slice(start)
    expect(seen.map((r) => field(r, 'x-forwarded-for'))).toEqual(['127.0.0.2', '127.0.0.2', '10.1.1.1, 127.0.0.2', '10.1.1.1, 127.0.0.2'])
    expect(seen.map((r) => field(r, 'forwarded'))).toEqual([
      'for=127.0.0.2;host=app.test;proto=http',
      'for=127.0.0.2;host=app.test;proto=http',
      'for=127.0.0.2;host=app.test;proto=http',
      'for=127.0.0.2;host=app.test;proto=http',
    ])
  })

  test('concurrent clients from different addresses each get their own address on the inner path', async () => {
    const addresses = ['127.0.0.2', '127.0.0.3', '127.0.0.4']
    const clients = await Promise.all(addresses.map((a) => RawClient.connect(gw.port, { localAddress: a })))
    clients.forEach((c, i) => c.write(req('GET', `/filtered/who-${addresses[i]}`)))
    await Promise.all(clients.map((c) => c.readResponse()))
    for (const c of clients) c.destroy()
    for (const address of addresses) {
      const seen = be.requests.find((r) => r.target === `/filtered/who-${address}`)!
      expect(field(seen, 'x-forwarded-for')).toBe(address)
    }
  })
})

describe('what only the inner path serves', () => {
  test('HTTP/1.0 without keep-alive: answered, then closed', async () => {
    const c = await RawClient.connect(gw.port)
    c.write('GET /d/ten HTTP/1.0\r\nHost: app.test\r\n\r\n')
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([200, 'GET /d/ten'])
    expect(header(res, 'connection')).toBe('close')
    expect(await c.waitClosed(1000)).toBe(true)
  })

  test('HTTP/1.0 with keep-alive: a connection kept open is announced with Connection: keep-alive', async () => {
    const c = await RawClient.connect(gw.port)
    c.write('GET /d/ten-ka HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n')
    const res = await c.readResponse()
    expect([res.status, res.body]).toEqual([200, 'GET /d/ten-ka'])
    const closed = await c.waitClosed(300)
    c.destroy()
    // RFC 9112 §9.3 / RFC 1945: an HTTP/1.0 client only knows the connection persists from the response.
    expect(closed ? 'closed' : (header(res, 'connection') ?? '(no connection field)').toLowerCase()).toBe(closed ? 'closed' : 'keep-alive')
  })

  test('HTTP/1.0 keep-alive requests pipelined in one packet are all answered', async () => {
    const c = await RawClient.connect(gw.port)
    c.write('GET /d/ten-a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /d/ten-b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    const first = await c.readResponse()
    const second = await c.readResponse().catch((e: Error) => ({ status: 0, body: e.message.slice(0, 60) }))
    c.destroy()
    expect([first.status, first.body]).toEqual([200, 'GET /d/ten-a'])
    expect([second.status, second.body]).toEqual([200, 'GET /d/ten-b'])
  })

  test('Connection: close on an inner-path request: answered with close, then closed', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/filtered/bye', 'Connection: close'))
    const res = await c.readResponse()
    expect([res.status, res.body, header(res, 'connection')]).toEqual([200, 'GET /filtered/bye', 'close'])
    expect(await c.waitClosed(1000)).toBe(true)
  })

  test('Expect: 100-continue: the interim response, then the final one', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/d/expect', 'Expect: 100-continue', 'Content-Length: 4'))
    const interim = await c.readResponse()
    expect(interim.status).toBe(100)
    c.write('body')
    const final = await c.readResponse()
    c.destroy()
    expect([final.status, final.body]).toEqual([200, 'POST /d/expect'])
    expect(be.requests.find((r) => r.target === '/d/expect')?.body).toBe('body')
  })

  test('absolute-form target: routed by its authority, forwarded in origin-form', async () => {
    const start = be.requests.length
    const c = await RawClient.connect(gw.port)
    c.write('GET http://app.test/d/absolute?z=1 HTTP/1.1\r\nHost: app.test\r\n\r\n')
    const res = await c.readResponse()
    c.destroy()
    expect(res.status).toBe(200)
    expect(be.requests.slice(start).map((r) => r.target)).toEqual(['/d/absolute?z=1'])
  })

  test('WebSocket upgrade: 101, then frames both ways through the tunnel', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/ws', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'))
    const res = await c.readResponse()
    expect(res.status).toBe(101)
    expect(header(res, 'sec-websocket-accept')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
    // A masked text frame "hi".
    const mask = [1, 2, 3, 4]
    const payload = [...Buffer.from('hi')].map((b, i) => b ^ mask[i % 4]!)
    c.write(new Uint8Array([0x81, 0x80 | payload.length, ...mask, ...payload]))
    const deadline = Date.now() + 2000
    while (c.unread.length < 9 && Date.now() < deadline) await Bun.sleep(10)
    const frame = Buffer.from(c.unread, 'latin1')
    c.destroy()
    expect([frame[0], frame[1]]).toEqual([0x81, 7])
    expect(frame.subarray(2, 9).toString()).toBe('echo:hi')
  })

  test('h2c with prior knowledge: the preface reaches an HTTP/2 server that answers with SETTINGS', async () => {
    const c = await RawClient.connect(gw.port)
    c.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
    c.write(new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    const deadline = Date.now() + 2000
    while (c.unread.length < 9 && Date.now() < deadline) await Bun.sleep(10)
    const frame = Buffer.from(c.unread, 'latin1')
    c.destroy()
    // Frame header: 3-byte length, type 0x4 (SETTINGS), flags 0 (not an ACK), stream 0.
    expect([frame[3], frame[4], frame.readUInt32BE(5)]).toEqual([4, 0, 0])
  })
})
