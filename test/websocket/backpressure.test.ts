/**
 * Backpressure both ways with the gateway in a child process, so its RSS can be measured apart
 * from the test's client and backend. Without pausing, Bun drops frames over its 16 MiB limit
 * (send() returns 0) or buffers without bound; here every byte must arrive, in order, while the
 * gateway's RSS grows far less than the payload. Sizes are printed, only loosely bounded.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { GatewayProcess, mb } from '../support/gateway-client.ts'
import { floodByte, startWsBackend, type WsBackend } from './support/ws-backend.ts'
import { TestClient } from './support/client.ts'

const TOTAL = 96 * 1024 * 1024
/** Bun's own per-socket buffers are 16 MiB each way; the payload is 96 MiB. */
const MAX_RSS_GROWTH = 48 * 1024 * 1024

let backend: WsBackend
let gateway: GatewayProcess

beforeAll(async () => {
  backend = startWsBackend()
  gateway = await GatewayProcess.start(simple(0, [rule()], [{ ...pool('p1', [backend.port]), protocol: 'ws' }]))
})
afterAll(async () => {
  await gateway?.stop()
  await backend?.stop()
})

test('a slow reader receives every byte of a 96 MiB flood, with bounded gateway memory', async () => {
  const baseline = await gateway.rss()
  const client = await TestClient.connect(`ws://127.0.0.1:${gateway.port}/flood?bytes=${TOTAL}`)
  // The reader stalls completely for a while: the gateway must stop reading from the backend.
  client.ws.pause()
  const stalledPeak = await gateway.peakRssDuring(Bun.sleep(1_500))

  let received = 0
  let mismatch = -1
  const done = new Promise<void>((resolve) => {
    client.ws.addEventListener('message', (ev) => {
      const frame = ev.data as Buffer
      for (let i = 0; i < frame.length; i += 4099) if (mismatch < 0 && frame[i] !== floodByte(received + i)) mismatch = received + i
      if (mismatch < 0 && frame.length > 0 && frame[frame.length - 1] !== floodByte(received + frame.length - 1)) mismatch = received + frame.length - 1
      received += frame.length
      if (received >= TOTAL) resolve()
    })
  })
  client.ws.resume()
  const peak = Math.max(stalledPeak, await gateway.peakRssDuring(Promise.race([done, client.closed])))
  const closed = await client.closed
  console.log(`ws slow reader: gateway RSS baseline ${mb(baseline)} MB, peak ${mb(peak)} MB, growth ${mb(peak - baseline)} MB (payload ${mb(TOTAL)} MB)`)
  expect(mismatch).toBe(-1)
  expect(received).toBe(TOTAL)
  expect(closed.code).toBe(1000)
  expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH)
})

test('a slow backend receives every byte the client sends, with bounded gateway memory', async () => {
  const baseline = await gateway.rss()
  const client = await TestClient.connect(`ws://127.0.0.1:${gateway.port}/sink?pauseMs=1500`)
  const frame = Buffer.alloc(256 * 1024, 7)
  // The client buffers on its side (in this process); the gateway must not.
  for (let sent = 0; sent < TOTAL; sent += frame.length) client.ws.send(frame)
  client.ws.send('count?')
  const reply = client.next(30_000)
  const peak = await gateway.peakRssDuring(reply)
  const count = await reply
  console.log(`ws slow backend: gateway RSS baseline ${mb(baseline)} MB, peak ${mb(peak)} MB, growth ${mb(peak - baseline)} MB (payload ${mb(TOTAL)} MB)`)
  expect(count).toBe(String(TOTAL))
  expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH)
  client.ws.close(1000)
  await client.closed
})
