#!/usr/bin/env bun
/**
 * The gRPC backend of bench/grpc.ts: node:http2 h2c on 127.0.0.1:<port>, gRPC framing by hand so
 * the backend costs little next to the proxies. Unary: answers each call with its request
 * message and grpc-status 0 in trailers. /bench.Stream/Bidi: echoes every byte back as it
 * arrives (pipe: flow control both ways), then trailers.
 */
import http2, { type ServerHttp2Stream } from 'node:http2'

const port = Number(process.argv[2])
const TRAILERS = { 'grpc-status': '0', [http2.sensitiveHeaders]: ['grpc-status'] }
const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } })
server.on('stream', (stream: ServerHttp2Stream, headers) => {
  stream.on('error', () => {})
  // Never-indexed fields and no Date: Bun's HPACK encoder uses dynamic-table indexes beyond the
  // table size nginx's grpc module announces ("upstream sent invalid http2 table index"), measured
  // with 8 concurrent streams on Bun 1.4.5; literal fields keep nginx's grpc_pass working.
  const head = { ':status': 200, 'content-type': 'application/grpc', [http2.sensitiveHeaders]: ['content-type'] }
  if (headers[':path'] === '/bench.Stream/Bidi') {
    stream.respond(head, { waitForTrailers: true, sendDate: false } as http2.ServerStreamResponseOptions)
    stream.on('wantTrailers', () => stream.sendTrailers(TRAILERS))
    stream.pipe(stream)
    return
  }
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  stream.on('end', () => {
    // h2load resets the calls in flight when its time is up
    if (stream.destroyed || stream.closed) return
    stream.respond(head, { waitForTrailers: true, sendDate: false } as http2.ServerStreamResponseOptions)
    stream.on('wantTrailers', () => stream.sendTrailers(TRAILERS))
    stream.end(Buffer.concat(chunks))
  })
})
process.on('uncaughtException', (err) => console.error('backend:', err.message))
server.on('sessionError', () => {})
server.on('session', (s) => s.on('error', () => {}))
server.listen(port, '127.0.0.1', () => console.log(`grpc bench backend on ${port}`))
