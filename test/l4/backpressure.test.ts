/**
 * A slow reader must not make the gateway buffer the stream: 64 MB go through a gateway running in
 * its own process while the reader is paused; every byte must arrive in order, and the gateway's
 * RSS growth is printed (and only loosely bounded: far below the payload).
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { GatewayProcess } from '../support/gateway-client.ts'
import { PatternVerifier, patternChunk } from './support/pattern.ts'
import { backend, pool, route, snapshot, tcpPort } from './support/snapshot.ts'
import { freePort } from './support/servers.ts'

const TOTAL = 64 * 1024 * 1024
const CHUNK = 64 * 1024
const PAUSE_MS = 1_500
/** Without backpressure nearly the whole payload would sit in the gateway; with it, a few chunks do. */
const MAX_RSS_GROWTH = TOTAL / 2

let gateway: GatewayProcess | undefined
let server: Server | undefined

afterEach(async () => {
  await gateway?.stop()
  server?.close()
  gateway = undefined
  server = undefined
})

/** Writes the pattern with the sender honouring its own socket's backpressure, then ends. */
async function sendPattern(socket: Socket): Promise<void> {
  for (let offset = 0; offset < TOTAL; offset += CHUNK) {
    if (!socket.write(patternChunk(offset, CHUNK))) await new Promise((resolve) => socket.once('drain', resolve))
  }
  socket.end()
}

async function listen(handler: (socket: Socket) => void): Promise<number> {
  server = createServer({ allowHalfOpen: true }, handler)
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)))
}

async function startGateway(backendPort: number): Promise<number> {
  const port = await freePort()
  gateway = await GatewayProcess.start(
    snapshot([tcpPort(port, [route('bulk', [backend('test/bulk:1')])])], [pool('test/bulk:1', [backendPort])]),
  )
  return port
}

/** Peak gateway RSS while `wait` runs, sampled every 50 ms. */
async function peakRssDuring(wait: Promise<unknown>): Promise<number> {
  let peak = 0
  let done = false
  void wait.finally(() => (done = true))
  while (!done) {
    peak = Math.max(peak, await gateway!.rss())
    await Bun.sleep(50)
  }
  return Math.max(peak, await gateway!.rss())
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)

describe('backpressure', () => {
  test('download to a paused reader: in order, complete, gateway memory bounded', async () => {
    const backendPort = await listen((socket) => {
      socket.on('error', () => {})
      void sendPattern(socket)
    })
    const port = await startGateway(backendPort)
    const baseline = await gateway!.rss()

    const verifier = new PatternVerifier()
    const client = connect({ host: '127.0.0.1', port })
    const ended = new Promise<void>((resolve, reject) => {
      client.on('end', resolve)
      client.on('error', reject)
    })
    let resumeAt = 0
    const paused = new Promise<void>((resolve) => {
      client.once('data', (chunk: Buffer) => {
        verifier.push(chunk)
        client.pause()
        resumeAt = Date.now() + PAUSE_MS
        setTimeout(() => {
          client.on('data', (more: Buffer) => verifier.push(more))
          client.resume()
          resolve()
        }, PAUSE_MS)
      })
    })
    const peak = await peakRssDuring(paused)
    await ended
    client.destroy()

    console.log(`download: gateway RSS baseline ${mb(baseline)} MB, peak while reader paused ${mb(peak)} MB, growth ${mb(peak - baseline)} MB (payload ${mb(TOTAL)} MB)`)
    expect(resumeAt).toBeGreaterThan(0)
    expect(verifier.firstMismatch).toBe(-1)
    expect(verifier.received).toBe(TOTAL)
    expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH)
  }, 60_000)

  test('upload to a paused backend: in order, complete, gateway memory bounded', async () => {
    let report!: (result: { received: number; firstMismatch: number }) => void
    const received = new Promise<{ received: number; firstMismatch: number }>((resolve) => (report = resolve))
    let backendResumed!: () => void
    const resumed = new Promise<void>((resolve) => (backendResumed = resolve))
    const backendPort = await listen((socket) => {
      socket.on('error', () => {})
      const verifier = new PatternVerifier()
      socket.pause()
      setTimeout(() => {
        socket.on('data', (chunk: Buffer) => verifier.push(chunk))
        socket.resume()
        backendResumed()
      }, PAUSE_MS)
      socket.on('end', () => {
        report({ received: verifier.received, firstMismatch: verifier.firstMismatch })
        socket.end()
      })
    })
    const port = await startGateway(backendPort)
    const baseline = await gateway!.rss()

    const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    client.on('error', () => {})
    await new Promise((resolve) => client.once('connect', resolve))
    void sendPattern(client)
    const peak = await peakRssDuring(resumed)
    const result = await received
    client.destroy()

    console.log(`upload: gateway RSS baseline ${mb(baseline)} MB, peak while backend paused ${mb(peak)} MB, growth ${mb(peak - baseline)} MB (payload ${mb(TOTAL)} MB)`)
    expect(result.firstMismatch).toBe(-1)
    expect(result.received).toBe(TOTAL)
    expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH)
  }, 60_000)
})
