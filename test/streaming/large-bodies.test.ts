/**
 * 100 MiB through the gateway each way with the gateway in a child process: bodies must stream
 * (flat memory), not be buffered. RSS growth is printed and only loosely bounded.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { GatewayProcess, mb } from '../support/gateway-client.ts'
import { patternBody, patternByte, startStreamBackend, type StreamBackend } from './support/stream-backend.ts'

const TOTAL = 100 * 1024 * 1024
// Measured: ~7 MB growth relaying fetch bodies natively, ~34 MB with the idle guard (its chunks
// become JS garbage until GC; 400 MiB gives the same ~32 MB, so it does not scale with the payload).
const MAX_RSS_GROWTH = 48 * 1024 * 1024

let backend: StreamBackend
let gateway: GatewayProcess

beforeAll(async () => {
  backend = startStreamBackend()
  gateway = await GatewayProcess.start(simple(0, [rule()], [pool('p1', [backend.port])]))
}, 30_000)
afterAll(async () => {
  await gateway?.stop()
  await backend?.stop()
}, 30_000)

test('100 MiB download streams through with bounded gateway memory', async () => {
  const baseline = await gateway.rss()
  const download = (async () => {
    const res = await fetch(`${gateway.base}/download?bytes=${TOTAL}`)
    let bytes = 0
    let ok = true
    for await (const chunk of res.body!) {
      if (chunk.length > 0 && (chunk[0] !== patternByte(bytes) || chunk[chunk.length - 1] !== patternByte(bytes + chunk.length - 1))) ok = false
      bytes += chunk.length
    }
    return { bytes, ok }
  })()
  const peak = await gateway.peakRssDuring(download)
  console.log(`download: gateway RSS baseline ${mb(baseline)} MB, peak ${mb(peak)} MB, growth ${mb(peak - baseline)} MB (payload ${mb(TOTAL)} MB)`)
  expect(await download).toEqual({ bytes: TOTAL, ok: true })
  expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH)
}, 30_000)

test('100 MiB upload streams through with bounded gateway memory', async () => {
  const baseline = await gateway.rss()
  const upload = fetch(`${gateway.base}/upload`, { method: 'POST', body: patternBody(TOTAL), duplex: 'half' } as RequestInit).then(
    async (res) => (await res.json()) as { bytes: number; ok: boolean },
  )
  const peak = await gateway.peakRssDuring(upload)
  console.log(`upload: gateway RSS baseline ${mb(baseline)} MB, peak ${mb(peak)} MB, growth ${mb(peak - baseline)} MB (payload ${mb(TOTAL)} MB)`)
  expect(await upload).toEqual({ bytes: TOTAL, ok: true })
  expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH)
}, 30_000)
