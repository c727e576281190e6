#!/usr/bin/env bun
/**
 * Load for the streaming part of bench/grpc.ts: `streams` concurrent bidirectional gRPC calls
 * over one h2c connection to 127.0.0.1:<port>, each sending `messages` messages of `size` bytes
 * as fast as flow control lets it while reading the echoes; prints the elapsed seconds and the
 * messages echoed as JSON. Fails (exit 1) when a call does not end with grpc-status 0 or loses bytes.
 */
import http2 from 'node:http2'

const [port, streams, messages, size] = process.argv.slice(2).map(Number) as [number, number, number, number]
const frame = Buffer.alloc(5 + size, 120)
frame[0] = 0
frame.writeUInt32BE(size, 1)

const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1 << 20 } })
const t0 = performance.now()
async function one(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/bench.Stream/Bidi', 'content-type': 'application/grpc', te: 'trailers' })
    let received = 0
    let status: string | undefined
    let head: http2.IncomingHttpHeaders = {}
    req.on('response', (h) => (head = h))
    req.on('data', (c: Buffer) => (received += c.length))
    req.on('trailers', (t) => (status = String(t['grpc-status'])))
    req.on('end', () => (status === '0' && received === messages * frame.length ? resolve(messages) : reject(new Error(`status ${status}, ${received} of ${messages * frame.length} bytes, head ${JSON.stringify(head)}`))))
    req.on('error', reject)
    let sent = 0
    const pump = () => {
      while (sent < messages) {
        sent++
        if (!req.write(frame)) return void req.once('drain', pump)
      }
      req.end()
    }
    pump()
  })
}
try {
  const counts = await Promise.all(Array.from({ length: streams }, one))
  console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000, messages: counts.reduce((a, b) => a + b, 0) }))
  session.close()
} catch (err) {
  console.error(String(err))
  session.destroy()
  process.exit(1)
}
