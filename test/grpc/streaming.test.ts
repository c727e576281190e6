/**
 * Streaming gRPC through Portico with a real @grpc/grpc-js client and server: 10,000 messages
 * each way on one bidirectional call, client and server streams, flow control (a client that
 * stops reading stalls the backend instead of filling the gateway's memory), grpc-timeout, and
 * cancellation reaching the backend.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eventually } from '../e2e/support.ts'
import { grpc, rawCodec, TEST_SERVICE, unary } from './echo.ts'
import { GrpcHarness } from './harness.ts'

const h = new GrpcHarness()
let client: grpc.Client

beforeAll(async () => {
  client = await h.startCatchAll('streams')
})

afterAll(async () => {
  client?.close()
  await h.stop()
})

const path = (m: string) => `/${TEST_SERVICE}/${m}`

test('bidirectional stream: 10,000 messages each way, in order, writes paced by backpressure', async () => {
  const call = client.makeBidiStreamRequest(path('Bidi'), rawCodec.serialize, rawCodec.deserialize)
  const total = 10_000
  let received = 0
  let inOrder = true
  let paused = 0
  const done = new Promise<grpc.StatusObject>((resolve, reject) => {
    call.on('data', (m: Buffer) => {
      if (m.readUInt32BE(0) !== received) inOrder = false
      received++
    })
    call.on('status', resolve)
    call.on('error', (e: grpc.ServiceError) => (e.code === 0 ? undefined : reject(e)))
  })
  for (let i = 0; i < total; i++) {
    const m = Buffer.alloc(256)
    m.writeUInt32BE(i, 0)
    if (!call.write(m)) {
      paused++
      await new Promise((r) => call.once('drain', r))
    }
  }
  call.end()
  const status = await done
  expect(status.code).toBe(0)
  expect(received).toBe(total)
  expect(inOrder).toBe(true)
  expect(h.backends[0]!.stats.received).toBeGreaterThanOrEqual(total)
  // The client's writes were held back at least once: the stream is paced, not buffered.
  expect(paused).toBeGreaterThan(0)
})

test('client stream: 10,000 messages up, one answer with the count', async () => {
  const answer = await new Promise<{ count: number; bytes: number }>((resolve, reject) => {
    const call = client.makeClientStreamRequest(path('Upload'), rawCodec.serialize, rawCodec.deserialize, (err, res) => (err ? reject(err) : resolve(JSON.parse(res!.toString()))))
    let i = 0
    const pump = () => {
      while (i < 10_000) {
        i++
        if (!call.write(Buffer.alloc(100, 1))) return void call.once('drain', pump)
      }
      call.end()
    }
    pump()
  })
  expect(answer).toEqual({ count: 10_000, bytes: 1_000_000 })
})

test('server stream: 10,000 messages down to a client that reads them all', async () => {
  const call = client.makeServerStreamRequest(path('Download'), rawCodec.serialize, rawCodec.deserialize, Buffer.from(JSON.stringify({ count: 10_000, size: 100 })))
  let count = 0
  const status = await new Promise<grpc.StatusObject>((resolve) => {
    call.on('data', () => count++)
    call.on('status', resolve)
    call.on('error', () => {})
  })
  expect(status.code).toBe(0)
  expect(count).toBe(10_000)
})

test('a client that stops reading stalls the backend: flow control, no buffering in the gateway', async () => {
  const stats = h.backends[0]!.stats
  const before = stats.sent
  const size = 16 * 1024
  const count = 2_000 // 32 MiB if nothing held it back
  const call = client.makeServerStreamRequest(path('Download'), rawCodec.serialize, rawCodec.deserialize, Buffer.from(JSON.stringify({ count, size })))
  let got = 0
  call.on('data', () => {
    got++
    if (got === 1) call.pause()
  })
  call.on('error', () => {})
  // Let the backend write as much as the windows allow, until it is stuck.
  await eventually(() => stats.sent - before > 0 || undefined, 5000, 'backend started')
  let last = -1
  await eventually(async () => {
    const now = stats.sent
    const stuck = now === last
    last = now
    await Bun.sleep(150)
    return stuck || undefined
  }, 10_000, 'backend stalled')
  const sentWhilePaused = stats.sent - before
  // Windows and socket buffers on three hops hold a few MiB at most, far below the 32 MiB.
  expect(sentWhilePaused * size).toBeLessThan(12 * 1024 * 1024)
  expect(sentWhilePaused).toBeLessThan(count)
  // Reading again drains everything.
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve))
  call.resume()
  expect((await status).code).toBe(0)
  expect(got).toBe(count)
})

test('grpc-timeout: the gateway ends a slow call with DEADLINE_EXCEEDED', async () => {
  const r = await unary(client, 'Slow', {}, '3000', 300, TEST_SERVICE)
  expect(r.code).toBe(grpc.status.DEADLINE_EXCEEDED)
})

test('grpc-timeout is enforced by the gateway itself (a client that does not enforce it gets the status too)', async () => {
  const http2 = await import('node:http2')
  const session = http2.connect(`http://127.0.0.1:${h.port}`)
  try {
    const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': path('Slow'), 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m' })
      let head: Record<string, unknown> = {}
      req.on('response', (h) => (head = h))
      req.on('trailers', (t) => resolve(t))
      req.on('end', () => resolve(head))
      req.on('error', reject)
      const body = Buffer.from('5000')
      const frame = Buffer.alloc(5 + body.length)
      frame.writeUInt32BE(body.length, 1)
      body.copy(frame, 5)
      req.end(frame)
      req.resume()
    })
    expect(trailers['grpc-status']).toBe('4')
    expect(String(trailers['grpc-message'])).toContain('gateway')
  } finally {
    session.close()
  }
})

test('a call under its deadline completes', async () => {
  const r = await unary(client, 'Slow', {}, '10', 5000, TEST_SERVICE)
  expect(r.code).toBe(0)
})

test('a cancelled call cancels the backend stream', async () => {
  const stats = h.backends[0]!.stats
  const before = stats.sent
  const call = client.makeServerStreamRequest(path('Download'), rawCodec.serialize, rawCodec.deserialize, Buffer.from(JSON.stringify({ count: 1_000_000, size: 1024 })))
  call.on('error', () => {})
  await new Promise((r) => call.once('data', r))
  call.cancel()
  let last = -1
  await eventually(async () => {
    const now = stats.sent
    const stuck = now === last
    last = now
    await Bun.sleep(150)
    return stuck || undefined
  }, 10_000, 'backend stopped')
  expect(stats.sent - before).toBeLessThan(1_000_000)
})
