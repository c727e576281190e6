/**
 * Peers that do not read: the front must hold the other side back instead of buffering, and a
 * link paused for one client's backpressure must not hurt anyone else. Client A below never
 * reads; its socket buffers fill after a few MiB of answers, or tens of MiB where the kernel
 * lets receive buffers grow that far (tcp_rmem), which is why the tests ask for more than that
 * rather than a fixed count.
 *
 * Each test has its own gateway and stops it (force) before the next: when a bug makes the
 * front buffer tens of MiB, that memory must be gone before anyone measures RSS again.
 */
import net from 'node:net'
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { forwardTo, pool, rule, simple } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { RawClient, req } from './support/client.ts'
import { startFront } from './support/gateway.ts'
import { memoryProbe } from './support/memory.ts'

const HUGE = 32 * 1024 * 1024

let bulk: RawBackend
let small: RawBackend
let huge: RawBackend
let hugePumpedAt = 0

beforeAll(() => {
  bulk = startRawBackend((r, c) => c.write(r.target === '/bulk/m64k' ? ok('m'.repeat(64 * 1024)) : ok(`${r.method} ${r.target}`)))
  small = startRawBackend((_r, c) => c.write(ok('s'.repeat(64 * 1024))))
  huge = startRawBackend((_r, c) => {
    c.write(`HTTP/1.1 200 OK\r\nContent-Length: ${HUGE}\r\n\r\n`)
    c.pump(HUGE, 256 * 1024, () => {
      hugePumpedAt = Date.now()
    })
  })
})

afterAll(() => {
  for (const b of [bulk, small, huge]) b.stop()
})

async function silentClient(port: number): Promise<net.Socket> {
  const a = net.connect(port, '127.0.0.1')
  await new Promise((resolve) => a.once('connect', resolve))
  a.pause()
  a.on('error', () => {})
  return a
}

test('a 64 MiB upload to a backend that does not read yet: the client is held back, memory stays bounded', async () => {
  const SIZE = 64 * 1024 * 1024
  let received = 0
  let headBytes = -1
  let resumedAt = 0
  let prefix = ''
  const sink = Bun.listen<undefined>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.pause()
        setTimeout(() => {
          resumedAt = Date.now()
          socket.resume()
        }, 400)
      },
      data(socket, data) {
        if (headBytes < 0) {
          prefix += Buffer.from(data.subarray(0, Math.min(data.byteLength, 4096))).toString('latin1')
          const blank = prefix.indexOf('\r\n\r\n')
          if (blank >= 0) headBytes = blank + 4
        }
        received += data.byteLength
        if (headBytes >= 0 && received >= headBytes + SIZE) socket.write(ok('stored'))
      },
    },
  })
  const gw = await startFront(simple(0, [rule({})], [pool('p1', [sink.port])]))
  try {
    const memory = await memoryProbe()
    const c = await RawClient.connect(gw.port)
    c.write(req('POST', '/upload', `Content-Length: ${SIZE}`))
    // Write 1 MiB at a time, waiting for drain like any well-behaved client.
    const chunk = new Uint8Array(1024 * 1024).fill(0x75)
    for (let sent = 0; sent < SIZE; sent += chunk.byteLength) {
      if (!c.socket.write(chunk)) await new Promise((resolve) => c.socket.once('drain', resolve))
    }
    const wroteAllAt = Date.now()
    const res = await c.readResponse({ timeoutMs: 10_000 })
    const growthMiB = memory.stop()
    c.destroy()
    expect([res.status, res.body]).toEqual([200, 'stored'])
    expect(received - headBytes).toBe(SIZE)
    expect(prefix.startsWith('POST /upload HTTP/1.1\r\n')).toBe(true)
    // The client could not hand over 64 MiB before the backend started reading.
    expect(wroteAllAt).toBeGreaterThan(resumedAt)
    expect(growthMiB).toBeLessThan(40)
  } finally {
    await gw.stop()
    sink.stop(true)
  }
}, 15_000)

test('a response that completed while its client was backlogged does not leave its upstream link paused in the pool', async () => {
  const gw = await startFront(simple(0, [rule({ timeouts: { requestMs: 1000 } })], [pool('p1', [bulk.port])]))
  try {
    // A asks for 64 KiB answers one at a time and never reads. Client B, right after each,
    // borrows the pooled link A's answer came on: B must get its own answer.
    const a = await silentClient(gw.port)
    const b = await RawClient.connect(gw.port)
    let stuckAt = -1
    for (let i = 0; i < 700 && stuckAt < 0; i++) {
      const n = bulk.requests.length
      a.write(req('GET', '/bulk/m64k'))
      const deadline = Date.now() + 1000
      while (bulk.requests.length === n && Date.now() < deadline) await Bun.sleep(1)
      // The front stopped serving A (its answer waits for A to read): nothing more to learn.
      if (bulk.requests.length === n) break
      await Bun.sleep(3)
      b.write(req('GET', `/bulk/b/${i}`))
      const res = await b.readResponse({ timeoutMs: 3000 }).catch(() => undefined)
      if (res?.body !== `GET /bulk/b/${i}`) stuckAt = i
    }
    a.destroy()
    b.destroy()
    // With the bug, B's request sits on the paused link until the route's 1 s timeout (504).
    expect(stuckAt).toBe(-1)
  } finally {
    await gw.stop()
  }
})

test('a client that pipelines and never reads cannot make the front buffer whole responses', async () => {
  const gw = await startFront(
    simple(0, [
      rule({ match: { path: { type: 'PathPrefix', value: '/huge' } }, action: forwardTo('huge') }),
      rule({ action: forwardTo('small'), timeouts: { requestMs: 300 } }),
    ], [pool('small', [small.port]), pool('huge', [huge.port])]),
  )
  const memory = await memoryProbe()
  let growthMiB = 0
  hugePumpedAt = 0
  try {
    const a = await silentClient(gw.port)
    let batch = ''
    for (let i = 0; i < 1000; i++) batch += req('GET', `/small/${i}`)
    batch += req('GET', '/huge')
    a.write(batch)
    // Until the huge body went through (the bug), or the front stopped serving A for a while
    // (what backpressure looks like: A's answers wait for A to read).
    let served = -1
    let quietSince = Date.now()
    const deadline = Date.now() + 6000
    while (hugePumpedAt === 0 && Date.now() < deadline) {
      await Bun.sleep(50)
      const now = small.requests.length + huge.requests.length
      if (now !== served) {
        served = now
        quietSince = Date.now()
      } else if (Date.now() - quietSince > 700) break
    }
    a.destroy()
  } finally {
    growthMiB = memory.stop()
    await gw.stop()
    Bun.gc(true)
  }
  // Nobody read: the 32 MiB body cannot have left the backend unless the front stored it
  // (the 64 MiB of small answers before it are more than the kernel buffers can hold).
  expect(hugePumpedAt).toBe(0)
  expect(growthMiB).toBeLessThan(24)
}, 15_000)
