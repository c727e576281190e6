/**
 * Fault injection with backends that refuse, reset, black-hole, garble or die mid-body. The
 * statuses are proxy.ts's semantics: refused → 502, reset or closed before response headers → 503
 * (what Envoy answers and the Gateway API retry conformance test accepts), no answer → 504 at the
 * route timeout or the default upstream timeout. A slow backend never blocks another route.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { closedPort } from '../dataplane/harness.ts'
import { forwardTo, pool, rule, simple } from '../dataplane/ir.ts'
import { startGateway, type Gateway } from './support/gateway.ts'

/** A TCP backend with scripted misbehaviour per connection; `accepted` counts connections. */
function faultyBackend(onData: (socket: { write(d: string): void; end(): void; terminate(): void }, head: string) => void) {
  let accepted = 0
  const server = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open() {
        accepted++
      },
      data(socket, data) {
        onData(socket, Buffer.from(data).toString('latin1'))
      },
    },
  })
  return { port: server.port, accepted: () => accepted, stop: () => server.stop(true) }
}

let echo: EchoUpstream
let gw: Gateway
const backends: { stop(): void }[] = []

const reset = faultyBackend((s) => s.terminate())
const blackHole = faultyBackend(() => {})
const garbage = faultyBackend((s) => {
  s.write('HTTP/1.1 abc\r\nthis is not http\r\n\r\n')
  s.end()
})
const midBody = faultyBackend((s) => {
  s.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n' + 'x'.repeat(1000))
  setTimeout(() => s.terminate(), 50)
})
backends.push(reset, blackHole, garbage, midBody)

beforeAll(async () => {
  echo = startEcho('healthy')
  const refused = await closedPort()
  const route = (prefix: string, target: string, extra: Parameters<typeof rule>[0] = {}) =>
    rule({ match: { path: { type: 'PathPrefix', value: prefix } }, action: forwardTo(target), ...extra })
  gw = await startGateway(
    simple(0, [
      route('/refused', 'refused'),
      route('/reset', 'reset'),
      route('/hole-timeout', 'hole', { timeouts: { requestMs: 400 } }),
      route('/hole-default', 'hole'),
      route('/garbage', 'garbage'),
      route('/slow-no-timeout', 'healthy', { timeouts: { requestMs: 0 } }),
      route('/mid-body', 'mid'),
      route('/', 'healthy'),
    ], [
      pool('refused', [refused]),
      pool('reset', [reset.port]),
      pool('hole', [blackHole.port]),
      pool('garbage', [garbage.port]),
      pool('mid', [midBody.port]),
      pool('healthy', [echo.port]),
    ]),
    // The default upstream timeout applies to routes without a Gateway API timeout.
    { upstreamTimeoutMs: 800 },
  )
})

afterAll(async () => {
  await gw.stop()
  await echo.stop()
  for (const b of backends) b.stop()
})

describe('upstream faults', () => {
  test('connection refused → 502', async () => {
    expect((await fetch(`${gw.base}/refused`)).status).toBe(502)
  })

  test('reset before response headers → 503, and the backend did see the connection', async () => {
    const before = reset.accepted()
    expect((await fetch(`${gw.base}/reset`)).status).toBe(503)
    expect(reset.accepted()).toBeGreaterThan(before)
  })

  test('black hole → 504 at the route timeout', async () => {
    const started = Date.now()
    expect((await fetch(`${gw.base}/hole-timeout`)).status).toBe(504)
    // Not a performance bound: only that the route timeout, not some other timer, answered.
    expect(Date.now() - started).toBeGreaterThanOrEqual(350)
  })

  test('black hole on a route without timeouts → 504 at the default upstream timeout', async () => {
    const started = Date.now()
    expect((await fetch(`${gw.base}/hole-default`)).status).toBe(504)
    expect(Date.now() - started).toBeGreaterThanOrEqual(750)
  })

  test('timeouts.request: 0s disables the deadline, the default upstream timeout included', async () => {
    // the same slow answer that is cut at the 800 ms default on an unset route
    expect((await fetch(`${gw.base}/slow-no-timeout?delay=1200`)).status).toBe(200)
    expect((await fetch(`${gw.base}/slow-default?delay=1200`)).status).toBe(504)
  })

  test('a garbled response head → 502 (an invalid response, as nginx answers), never a 500', async () => {
    expect((await fetch(`${gw.base}/garbage`)).status).toBe(502)
  })

  test('a backend dying mid-body: the client sees the body cut, not a hang or a forged end', async () => {
    const res = await fetch(`${gw.base}/mid-body`)
    expect(res.status).toBe(200)
    const outcome = await res.arrayBuffer().then(
      (b) => `complete ${b.byteLength}`,
      () => 'cut',
    )
    expect(outcome).toBe('cut')
  })

  test('twenty requests stuck on a black hole never block fast requests to another backend', async () => {
    const stuck = Array.from({ length: 20 }, () => fetch(`${gw.base}/hole-default`).then((r) => r.status))
    await Bun.sleep(50)
    const fast = await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${gw.base}/fast/${i}`).then((r) => r.status)))
    expect(fast.every((s) => s === 200)).toBe(true)
    expect(new Set(await Promise.all(stuck))).toEqual(new Set([504]))
  })

  test('after all that the gateway still serves', async () => {
    expect((await fetch(`${gw.base}/still-ok`)).status).toBe(200)
  })
})
