/**
 * The front's direct path awaits an asynchronous policy verdict (a global rate limit, a JWT or
 * bcrypt cache miss, an authorization service) and then goes on with the exchange itself: no
 * hand-off to the inner pipeline, so the chain runs once per request. Over raw sockets: continue
 * and reply after a delay, the client closing while it waits (no upstream request), pipelined
 * requests behind a pending verdict (in order), a rejected or throwing hook (500, the connection
 * survives), bodies (Content-Length, chunked) sent while the verdict is pending (forwarded
 * intact), a new snapshot arriving meanwhile (the request keeps its plan), and the wait bounded
 * by the request timeout.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RUNTIMES } from '../../src/policy/runtimes.ts'
import type { PolicyRequest, PolicyRuntime, Verdict } from '../../src/policy/runtime.ts'
import type { PolicyIr } from '../../src/policy/kind.ts'
import type { HttpRule } from '../../src/ir/types.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { field, ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { header, RawClient, req } from './support/client.ts'
import { startFront, type Front } from './support/gateway.ts'

/** Verdicts held by the test, by the x-hold value of the request. */
const held = new Map<string, (v: Verdict) => void>()
/** Hook calls by x-verdict value: each request must be run exactly once. */
const calls = new Map<string, number>()

/** A head-only feature whose verdict the request's x-verdict field scripts. */
const scripted: PolicyRuntime = {
  name: 'requestID',
  phase: 'client',
  order: 0,
  compile: () => ({
    headOnly: true,
    onRequest(r: PolicyRequest): Verdict | Promise<Verdict> {
      const kind = r.header('x-verdict') ?? 'none'
      calls.set(kind, (calls.get(kind) ?? 0) + 1)
      switch (kind) {
        case 'continue':
          return Bun.sleep(40).then(() => {
            r.setUpstreamHeader('x-policy', 'async')
            return undefined
          })
        case 'reply':
          return Bun.sleep(40).then(() => ({ status: 429, headers: [['retry-after', '1']], body: 'slow down\n' }))
        case 'reject':
          return Bun.sleep(20).then(() => Promise.reject(new Error('policy exploded')))
        case 'throw':
          throw new Error('policy threw')
        case 'hold':
          return new Promise<Verdict>((resolve) => held.set(r.header('x-hold')!, resolve))
        default:
          return undefined
      }
    },
  }),
}

const saved = RUNTIMES.requestID
let backend: RawBackend
let other: RawBackend
let gw: Front

const policy = { name: 'requestID', id: 'test/async#requestID', spec: {} } as unknown as PolicyIr
const policyRule = (): HttpRule => rule({ policies: [policy] })

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

beforeAll(async () => {
  ;(RUNTIMES as Record<string, PolicyRuntime>).requestID = scripted
  backend = startRawBackend((r, c) => c.write(ok(`${r.target} ${r.body.length}`)))
  other = startRawBackend((r, c) => c.write(ok(`other ${r.target}`)))
  // Bodies stream (no request buffering): these tests send body bytes while the verdict is pending.
  gw = await startFront(simple(0, [policyRule()], [pool('p1', [backend.port])]), { upstreamTimeoutMs: 1500, requestBufferBytes: 0 })
})

afterAll(async () => {
  ;(RUNTIMES as Record<string, PolicyRuntime>).requestID = saved
  await gw.stop()
  backend.stop()
  other.stop()
})

describe('an asynchronous verdict on the direct path', () => {
  test('the rule is direct although its hook may answer with a promise', () => {
    const plan = gw.dp.active.current!
    const r = plan.ports.get(0)!.router.listeners[0]!.catchAll!.rules.rules[0]!
    expect(r.direct).toBe(true)
  })

  test('resolves later to continue: forwarded with the policy edits, the hook ran once', async () => {
    calls.clear()
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/go', 'X-Verdict: continue'))
    const res = await c.readResponse()
    expect(res.status).toBe(200)
    expect(res.body).toBe('/go 0')
    const seen = backend.requests.at(-1)!
    expect(field(seen, 'x-policy')).toBe('async')
    // The front wrote the upstream head itself (the pipeline's would not keep the client's casing).
    expect(seen.head).toContain('\r\nHost: app.test\r\n')
    expect(calls.get('continue')).toBe(1)
    // keep-alive: the next request on the same connection is served too
    c.write(req('GET', '/again'))
    expect((await c.readResponse()).body).toBe('/again 0')
    c.destroy()
  })

  test('resolves later to a local reply: the backend sees nothing, the connection stays open', async () => {
    calls.clear()
    const before = backend.requests.length
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/no', 'X-Verdict: reply'))
    const res = await c.readResponse()
    expect(res.status).toBe(429)
    expect(res.body).toBe('slow down\n')
    expect(header(res, 'retry-after')).toBe('1')
    expect(header(res, 'connection')).toBeUndefined()
    expect(calls.get('reply')).toBe(1)
    c.write(req('GET', '/after'))
    expect((await c.readResponse()).body).toBe('/after 0')
    expect(backend.requests.length).toBe(before + 1)
    c.destroy()
  })

  test('the client resets the connection while the verdict is pending: abandoned, no upstream request', async () => {
    const before = backend.requests.length
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/gone', 'X-Verdict: hold', 'X-Hold: gone'))
    await until(() => held.has('gone'))
    // (a FIN is a half-close: what was sent is still answered, see below)
    c.socket.resetAndDestroy()
    await Bun.sleep(50)
    held.get('gone')!(undefined)
    await Bun.sleep(100)
    expect(backend.requests.slice(before).map((r) => r.target)).toEqual([])
    expect(backend.requests.some((r) => r.target === '/gone')).toBe(false)
    expect(gw.errors()).toEqual([])
  })

  test('pipelined requests behind a pending verdict are answered in order, each hook run once', async () => {
    calls.clear()
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/p1', 'X-Verdict: hold', 'X-Hold: p1') + req('GET', '/p2', 'X-Verdict: continue') + req('GET', '/p3', 'X-Verdict: reply') + req('GET', '/p4'))
    await until(() => held.has('p1'))
    await Bun.sleep(50)
    // nothing answered, nothing forwarded while the first verdict is pending
    expect(c.unread).toBe('')
    expect(backend.requests.some((r) => r.target === '/p2')).toBe(false)
    held.get('p1')!(undefined)
    const statuses: [number, string][] = []
    for (let i = 0; i < 4; i++) {
      const res = await c.readResponse()
      statuses.push([res.status, res.body])
    }
    expect(statuses).toEqual([
      [200, '/p1 0'],
      [200, '/p2 0'],
      [429, 'slow down\n'],
      [200, '/p4 0'],
    ])
    expect(calls.get('hold')).toBe(1)
    expect(calls.get('continue')).toBe(1)
    expect(calls.get('reply')).toBe(1)
    c.destroy()
  })

  test('a rejected verdict or a throwing hook: 500, logged, the connection survives', async () => {
    const since = gw.logs.length
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/r', 'X-Verdict: reject'))
    const res = await c.readResponse()
    expect(res.status).toBe(500)
    expect(header(res, 'connection')).toBeUndefined()
    c.write(req('GET', '/t', 'X-Verdict: throw'))
    expect((await c.readResponse()).status).toBe(500)
    c.write(req('GET', '/ok'))
    expect((await c.readResponse()).body).toBe('/ok 0')
    expect(c.closed).toBe(false)
    const errors = gw.errors(since)
    expect(errors.some((e) => e.includes('policy exploded'))).toBe(true)
    expect(errors.some((e) => e.includes('policy threw'))).toBe(true)
    c.destroy()
  })

  test('a Content-Length body sent while the verdict is pending is forwarded intact', async () => {
    const body = 'x'.repeat(100_000) + 'END'
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/upload', 'X-Verdict: hold', 'X-Hold: cl', `Content-Length: ${body.length}`))
    await until(() => held.has('cl'))
    c.write(body.slice(0, 30_000))
    await Bun.sleep(20)
    c.write(body.slice(30_000))
    await Bun.sleep(50)
    held.get('cl')!(undefined)
    const res = await c.readResponse({ timeoutMs: 5000 })
    expect(res.status).toBe(200)
    expect(res.body).toBe(`/upload ${body.length}`)
    expect(backend.requests.at(-1)!.body).toBe(body)
    c.write(req('GET', '/next'))
    expect((await c.readResponse()).body).toBe('/next 0')
    c.destroy()
  })

  test('a chunked body, partly before and partly after the verdict, is forwarded intact', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(`${req('POST', '/chunks', 'X-Verdict: hold', 'X-Hold: te', 'Transfer-Encoding: chunked')}5\r\nhello\r\n`)
    await until(() => held.has('te'))
    c.write('6\r\n world\r\n')
    await Bun.sleep(30)
    held.get('te')!(undefined)
    await Bun.sleep(30)
    c.write('0\r\n\r\n')
    const res = await c.readResponse()
    expect(res.status).toBe(200)
    const seen = backend.requests.at(-1)!
    expect(seen.body).toBe('hello world')
    expect(seen.rawBody).toBe('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
    c.destroy()
  })

  test('a half-close while the verdict is pending: the buffered request is still answered', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/fin', 'X-Verdict: hold', 'X-Hold: fin', 'Content-Length: 4') + 'data')
    await until(() => held.has('fin'))
    c.shutdown()
    await Bun.sleep(30)
    held.get('fin')!(undefined)
    const res = await c.readResponse()
    expect(res.status).toBe(200)
    expect(res.body).toBe('/fin 4')
    expect(await c.waitClosed()).toBe(true)
  })

  test('a new snapshot while the verdict is pending: the request keeps the plan it started with', async () => {
    const c = await RawClient.connect(gw.port)
    c.write(req('GET', '/swap', 'X-Verdict: hold', 'X-Hold: swap'))
    await until(() => held.has('swap'))
    const result = await gw.dp.apply(simple(0, [policyRule()], [pool('p1', [other.port])], 2))
    expect(result.problems).toEqual([])
    held.get('swap')!(undefined)
    expect((await c.readResponse()).body).toBe('/swap 0')
    // the next request follows the new plan
    c.write(req('GET', '/swapped'))
    expect((await c.readResponse()).body).toBe('other /swapped')
    c.destroy()
    await gw.dp.apply(simple(0, [policyRule()], [pool('p1', [backend.port])], 3))
  })

  test('a verdict that never comes: 504 after the request timeout', async () => {
    const c = await RawClient.connect(gw.port)
    const started = Date.now()
    c.write(req('GET', '/never', 'X-Verdict: hold', 'X-Hold: never'))
    const res = await c.readResponse({ timeoutMs: 5000 })
    expect(res.status).toBe(504)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
    // A late verdict for the finished exchange changes nothing.
    held.get('never')!(undefined)
    c.write(req('GET', '/alive'))
    expect((await c.readResponse()).body).toBe('/alive 0')
    expect(backend.requests.some((r) => r.target === '/never')).toBe(false)
    c.destroy()
  })
})

describe('a circuit-breaker queue after the chain ran on the direct path', () => {
  let slow: RawBackend
  let cb: Front
  const parked: (() => void)[] = []

  beforeAll(async () => {
    slow = startRawBackend((r, c) => {
      if (r.target === '/park') parked.push(() => c.write(ok('parked')))
      else c.write(ok(r.target))
    })
    const limits = { maxConnections: 1, maxPendingRequests: 5, maxParallelRequests: 100, maxParallelRetries: 1 }
    cb = await startFront(simple(0, [policyRule()], [{ ...pool('p1', [slow.port]), circuitBreaker: limits }]), { upstreamTimeoutMs: 3000 })
  })

  afterAll(async () => {
    await cb.stop()
    slow.stop()
  })

  test('waits for a slot on the direct path (the chain is not run again), a reset withdraws it from the queue', async () => {
    calls.clear()
    const a = await RawClient.connect(cb.port)
    a.write(req('GET', '/park'))
    await until(() => parked.length === 1)
    // b's verdict comes after a delay, then its circuit says: queue
    const b = await RawClient.connect(cb.port)
    b.write(req('GET', '/queued', 'X-Verdict: continue'))
    // c queues too, then goes away
    const c = await RawClient.connect(cb.port)
    c.write(req('GET', '/abandoned', 'X-Verdict: continue'))
    await until(() => calls.get('continue') === 2)
    await Bun.sleep(80)
    c.socket.resetAndDestroy()
    await Bun.sleep(30)
    expect(slow.requests.map((r) => r.target)).toEqual(['/park'])
    parked.shift()!()
    expect((await a.readResponse()).body).toBe('parked')
    expect((await b.readResponse()).body).toBe('/queued')
    expect(calls.get('continue')).toBe(2)
    // the withdrawn request never went upstream, and left no slot taken
    b.write(req('GET', '/after'))
    expect((await b.readResponse()).body).toBe('/after')
    expect(slow.requests.map((r) => r.target)).toEqual(['/park', '/queued', '/after'])
    a.destroy()
    b.destroy()
  })
})
