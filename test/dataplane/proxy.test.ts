import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { closedPort, rawRequest, startDataplane, type Running } from './harness.ts'
import { pool, rule, simple } from './ir.ts'

let echo: EchoUpstream
let gw: Running
/** Accepts, reads the request, then resets the connection (TCP RST) without answering. */
const resetter = net.createServer((socket) => socket.on('data', () => socket.resetAndDestroy()))

beforeAll(async () => {
  echo = startEcho('v1')
  await new Promise<void>((resolve) => resetter.listen(0, '127.0.0.1', resolve))
  const resetPort = (resetter.address() as net.AddressInfo).port
  gw = await startDataplane(
    simple(0, [
      rule({ match: { path: { type: 'PathPrefix', value: '/timeout' } }, timeouts: { requestMs: 300 } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/empty' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'empty' }, filters: [] }] } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/refused' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'dead' }, filters: [] }] } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/reset' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'reset' }, filters: [] }] } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/invalid' } }, action: { kind: 'forward', backends: [{ weight: 1, invalid: 'BackendNotFound', filters: [] }] } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/teapot' } }, action: { kind: 'respond', status: 418, body: 'short and stout' } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/api' } } }),
      rule({ match: { path: { type: 'PathPrefix', value: '/status' } } }),
      rule({ match: { path: { type: 'Exact', value: '/' } } }),
    ], [pool('p1', [echo.port]), pool('empty', []), pool('dead', [await closedPort()]), pool('reset', [resetPort])]),
  )
})

afterAll(async () => {
  await gw.stop()
  await echo.stop()
  resetter.close()
})

async function echoed(res: Response) {
  expect(res.status).toBe(200)
  return (await res.json()) as { path: string; method: string; headers: Record<string, string>; body: string }
}

describe('forwarding', () => {
  test('forwards method, path and query; keeps the client Host', async () => {
    const got = await echoed(await fetch(`${gw.base}/api/x?a=1&b=2`, { headers: { host: 'shop.example.com:8080' } }))
    expect(got.path).toBe('/api/x?a=1&b=2')
    expect(got.method).toBe('GET')
    expect(got.headers.host).toBe('shop.example.com:8080')
  })

  test('adds X-Forwarded-*, Forwarded and appends to an existing X-Forwarded-For', async () => {
    const got = await echoed(await fetch(`${gw.base}/api`, { headers: { host: 'a.test', 'x-forwarded-for': '203.0.113.9' } }))
    expect(got.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
    expect(got.headers['x-forwarded-proto']).toBe('http')
    expect(got.headers['x-forwarded-host']).toBe('a.test')
    expect(got.headers.forwarded).toBe('for=127.0.0.1;host=a.test;proto=http')
  })

  test('generates x-request-id when absent and keeps the client one', async () => {
    const generated = await echoed(await fetch(`${gw.base}/api`))
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    const kept = await echoed(await fetch(`${gw.base}/api`, { headers: { 'x-request-id': 'abc' } }))
    expect(kept.headers['x-request-id']).toBe('abc')
  })

  test('does not leak Bun fetch defaults for User-Agent/Accept/Accept-Encoding', async () => {
    const res = await rawRequest(gw.port, 'GET /api HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n')
    const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, ''))
    expect(body.headers['user-agent'] ?? '').toBe('')
    expect(body.headers.accept ?? '').toBe('')
    expect(body.headers['accept-encoding']).toBeUndefined()
  })

  test('client User-Agent and Accept-Encoding pass through untouched', async () => {
    const got = await echoed(await fetch(`${gw.base}/api`, { headers: { 'user-agent': 'curl/8', 'accept-encoding': 'gzip' } }))
    expect(got.headers['user-agent']).toBe('curl/8')
    expect(got.headers['accept-encoding']).toBe('gzip')
  })

  test('strips hop-by-hop request headers, including ones named in Connection', async () => {
    const res = await rawRequest(
      gw.port,
      'GET /api HTTP/1.1\r\nHost: raw.test\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n',
    )
    const text = res.slice(res.indexOf('{'), res.lastIndexOf('}') + 1)
    const headers = JSON.parse(text).headers as Record<string, string>
    for (const h of ['x-secret-hop', 'keep-alive', 'te', 'proxy-connection', 'upgrade']) expect(headers[h]).toBeUndefined()
    expect(headers['x-kept']).toBe('yes')
  })

  test('forwards request bodies', async () => {
    const got = await echoed(await fetch(`${gw.base}/api`, { method: 'POST', body: 'hello body' }))
    expect(got.body).toBe('hello body')
    expect(got.method).toBe('POST')
  })

  test('relays upstream status codes and does not follow redirects', async () => {
    expect((await fetch(`${gw.base}/status/404`)).status).toBe(404)
    expect((await fetch(`${gw.base}/status/302`, { redirect: 'manual' })).status).toBe(302)
  })
})

describe('errors', () => {
  test('no route → 404', async () => {
    expect((await fetch(`${gw.base}/nowhere`)).status).toBe(404)
  })

  test('no ready endpoints → 503', async () => {
    expect((await fetch(`${gw.base}/empty`)).status).toBe(503)
  })

  test('connection refused → 502', async () => {
    expect((await fetch(`${gw.base}/refused`)).status).toBe(502)
  })

  test('connection reset before response headers → 503 (Envoy and Gateway API conformance)', async () => {
    expect((await fetch(`${gw.base}/reset`)).status).toBe(503)
  })

  test('invalid backend → 500', async () => {
    expect((await fetch(`${gw.base}/invalid`)).status).toBe(500)
  })

  test('request timeout → 504', async () => {
    expect((await fetch(`${gw.base}/timeout?delay=2000`)).status).toBe(504)
  })

  test('respond action → its status and body', async () => {
    const res = await fetch(`${gw.base}/teapot`)
    expect(res.status).toBe(418)
    expect(await res.text()).toBe('short and stout')
  })
})

describe('connections', () => {
  test('upstream connections are reused (fetch keep-alive pool)', async () => {
    const before = echo.connections.size
    for (let i = 0; i < 20; i++) await echoed(await fetch(`${gw.base}/api/reuse`))
    // Sequential requests should ride one pooled connection; allow a little slack, not 20.
    expect(echo.connections.size - before).toBeLessThanOrEqual(2)
  })
})
