/**
 * Limits and slow clients over real sockets: body size (global and per route), header and
 * request-target limits, overload shedding, the total body deadline, keep-alive idle, the
 * header-read deadline (slowloris), a slow backend outliving the idle timeout, and pipelining.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { exchange, get } from './support/raw.ts'
import { startGateway, type Gateway } from './support/gateway.ts'

let echo: EchoUpstream
let gw: Gateway

const path = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })

beforeAll(async () => {
  echo = startEcho('backend')
  gw = await startGateway(
    simple(0, [
      rule({ match: path('/small'), maxBodyBytes: 1000 }),
      rule({ match: path('/unlimited'), maxBodyBytes: 0 }),
      rule({ match: path('/') }),
    ], [pool('p1', [echo.port])]),
    {
      maxBodyBytes: 64 * 1024,
      maxHeaderBytes: 4096,
      maxRequestTargetBytes: 1024,
      maxConcurrentRequests: 4,
      bodyTimeoutMs: 1500,
      keepAliveIdleSeconds: 1,
      headerTimeoutMs: 2500,
      upstreamTimeoutMs: 8000,
    },
  )
})

afterAll(async () => {
  await gw.stop()
  await echo.stop()
})

const post = (target: string, headers: string, body = '') => `POST ${target} HTTP/1.1\r\nHost: app.test\r\n${headers}\r\n${body}`

function chunked(total: number, chunk = 4096): string {
  let out = ''
  for (let sent = 0; sent < total; sent += chunk) {
    const n = Math.min(chunk, total - sent)
    out += `${n.toString(16)}\r\n${'x'.repeat(n)}\r\n`
  }
  return out + '0\r\n\r\n'
}

describe('body size', () => {
  test('Content-Length over the route limit → 413 + close, nothing reaches the backend', async () => {
    const before = echo.requests.length
    const res = await exchange(gw.port, post('/small', 'Content-Length: 2000\r\n', 'x'.repeat(2000)))
    expect(res.statuses).toEqual([413])
    expect(res.closed).toBe(true)
    expect(echo.requests.length).toBe(before)
  })

  test('a chunked body that grows past the route limit → 413 + close', async () => {
    const res = await exchange(gw.port, post('/small', 'Transfer-Encoding: chunked\r\n', chunked(5000, 500)))
    expect(res.statuses).toEqual([413])
    expect(res.closed).toBe(true)
  })

  test('a chunked body past the global limit → 413; within it → forwarded whole', async () => {
    const over = await exchange(gw.port, post('/any', 'Transfer-Encoding: chunked\r\n', chunked(100 * 1024)))
    expect(over.statuses).toEqual([413])
    const within = await exchange(gw.port, post('/any', 'Transfer-Encoding: chunked\r\nConnection: close\r\n', chunked(10 * 1024)))
    expect(within.statuses).toEqual([200])
    expect(echo.requests.at(-1)!.body.length).toBe(10 * 1024)
  })

  test('a route may lift the limit (portico.dev/max-body-size: "0")', async () => {
    const res = await fetch(`${gw.base}/unlimited`, { method: 'POST', body: 'y'.repeat(200 * 1024) })
    expect(res.status).toBe(200)
    expect(echo.requests.at(-1)!.body.length).toBe(200 * 1024)
  })

  test('at the limit exactly is fine', async () => {
    const res = await fetch(`${gw.base}/small`, { method: 'POST', body: 'z'.repeat(1000) })
    expect(res.status).toBe(200)
  })
})

describe('head limits below Bun’s own', () => {
  test('header block over maxHeaderBytes → 431 + close', async () => {
    const before = echo.requests.length
    const res = await exchange(gw.port, get('/x', `X-Big: ${'b'.repeat(5000)}`))
    expect(res.statuses).toEqual([431])
    expect(res.closed).toBe(true)
    expect(echo.requests.length).toBe(before)
  })

  test('request-target over maxRequestTargetBytes → 414 + close; at the limit → routed', async () => {
    const over = await exchange(gw.port, get(`/${'a'.repeat(1024)}`))
    expect(over.statuses).toEqual([414])
    expect(over.closed).toBe(true)
    const at = await fetch(`${gw.base}/${'a'.repeat(1023)}`)
    expect(at.status).toBe(200)
  })
})

describe('overload', () => {
  test('past maxConcurrentRequests new requests get 503 + Connection: close; served again once load drops', async () => {
    const slow = Array.from({ length: 4 }, () => fetch(`${gw.base}/slow?delay=700`))
    await Bun.sleep(150)
    const shed = await exchange(gw.port, get('/fast'))
    expect(shed.statuses).toEqual([503])
    expect(shed.text.toLowerCase()).toContain('connection: close')
    expect(shed.closed).toBe(true)
    for (const res of await Promise.all(slow)) expect(res.status).toBe(200)
    expect((await fetch(`${gw.base}/fast`)).status).toBe(200)
  })
})

describe('slow clients and timers (one test, run side by side to save wall time)', () => {
  test('slowloris heads, dribbled bodies and idle keep-alives are closed; others keep being served', async () => {
    const started = Date.now()
    // 1. Slowloris: 10 clients dribble a header byte every 400 ms and never finish the head (deadline 2.5 s).
    const dribbled = 'GET /x HTTP/1.1\r\nHost: app.test\r\nX-Slow: ' + 'a'.repeat(60)
    const slowloris = Array.from({ length: 10 }, () => exchange(gw.port, dribbled.split(''), { gapMs: 400, waitMs: 16_000 }))
    // 2. A body dribbled a byte every 200 ms (each byte is activity): the total body deadline (1.5 s) ends it.
    const bodyHead = post('/upload', 'Content-Length: 100\r\n')
    const slowBody = exchange(gw.port, [bodyHead, ...'x'.repeat(100).split('')], { gapMs: 200, waitMs: 10_000 })
    // 3. An idle keep-alive connection: closed after keepAliveIdleSeconds (1 s).
    const idle = exchange(gw.port, get('/idle'), { waitMs: 10_000 })
    // 4. A backend slower than the keep-alive idle timeout: waiting for it is not idleness.
    const slowBackend = fetch(`${gw.base}/think?delay=2500`)
    // 5. Meanwhile ordinary requests keep succeeding.
    let served = 0
    while (Date.now() - started < 3000) {
      expect((await fetch(`${gw.base}/ok`)).status).toBe(200)
      served++
      await Bun.sleep(50)
    }
    expect(served).toBeGreaterThan(10)

    const thinking = await slowBackend
    expect(thinking.status).toBe(200)

    const body = await slowBody
    expect(body.statuses).toEqual([408])
    expect(body.closed).toBe(true)

    const idleResult = await idle
    expect(idleResult.statuses).toEqual([200])
    expect(idleResult.closed).toBe(true)
    expect(idleResult.ms).toBeLessThan(2_500)

    for (const client of await Promise.all(slowloris)) {
      expect(client.closed).toBe(true)
      expect(client.statuses).toEqual([408])
      expect(client.ms).toBeGreaterThanOrEqual(2_400)
      expect(client.ms).toBeLessThan(4_000)
    }
  }, 20_000)
})

describe('pipelining', () => {
  test('requests sent in one packet are all answered, in order, each by its own backend call', async () => {
    const before = echo.requests.length
    const packet =
      get('/first?delay=80') +
      post('/second', 'Content-Length: 5\r\n', 'hello') +
      get('/third?delay=10') +
      post('/fourth', 'Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n') +
      get('/fifth', 'Connection: close')
    const res = await exchange(gw.port, packet, { waitMs: 3000 })
    expect(res.statuses).toEqual([200, 200, 200, 200, 200])
    expect(res.closed).toBe(true)
    const order = ['/first', '/second', '/third', '/fourth', '/fifth'].map((p) => res.text.indexOf(`"path":"${p}`))
    expect(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!))).toBe(true)
    expect(echo.requests.slice(before).map((r) => r.path.split('?')[0])).toEqual(['/first', '/second', '/third', '/fourth', '/fifth'])
  })

  test('a pipelined request behind a bad one is never served: the connection ends at the 400', async () => {
    const before = echo.requests.length
    const res = await exchange(gw.port, get('/ok-1') + 'GET /bad HTTP/1.1\r\nHost: app.test\r\nX A: b\r\n\r\n' + get('/never'))
    expect(res.statuses).toEqual([200, 400])
    expect(res.closed).toBe(true)
    expect(echo.requests.slice(before).map((r) => r.path)).toEqual(['/ok-1'])
  })
})
