/**
 * Overload protection for h2 clients (issue 19): h2 connections are tunnels through the front, so
 * their streams are shed by whoever serves them (the inner Bun.serve on ports without gRPC, the
 * node:http2 server on ports that carry gRPC): 503 + Retry-After, gRPC calls UNAVAILABLE, the
 * connection stays usable. Connection caps apply to h2 connections like to any other: the front
 * admits them at accept. h2c prior knowledge and h2 over TLS (ALPN), real sockets.
 */
import http2 from 'node:http2'
import { afterAll, describe, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpLimits } from '../../src/dataplane/http/limits.ts'
import type { BackendPool, Snapshot } from '../../src/ir/types.ts'
import { overloadCounters } from '../../src/dataplane/overload/metrics.ts'
import { closeH2cSessions } from '../../src/dataplane/upstream/h2c.ts'
import { listener, pool, port, rule, simple, snapshot, vhost } from '../dataplane/ir.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { ok, startRawBackend, type RawBackend } from '../front/support/backend.ts'
import { eventually } from '../e2e/support.ts'

const be: RawBackend = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target}`)))
const h2cBackend = http2.createServer()
h2cBackend.on('stream', (stream: http2.ServerHttp2Stream) => {
  stream.respond({ ':status': 200, 'content-type': 'text/plain' })
  stream.end('h2c backend')
})
await new Promise<void>((resolve) => h2cBackend.listen(0, '127.0.0.1', resolve))
const h2cPort = (h2cBackend.address() as { port: number }).port
const cert = makeCertificate(['h2.test'])

const planes: HttpDataplane[] = []
const sessions: http2.ClientHttp2Session[] = []
afterAll(async () => {
  for (const s of sessions) s.destroy()
  for (const dp of planes) await dp.stop(true)
  closeH2cSessions()
  be.stop()
  await new Promise((resolve) => h2cBackend.close(resolve))
})

async function start(snap: Snapshot, limits: Partial<HttpLimits>): Promise<{ dp: HttpDataplane; port: number }> {
  const dp = new HttpDataplane({ hostname: '127.0.0.1', limits })
  planes.push(dp)
  const result = await dp.apply(snap)
  expect(result.problems).toEqual([])
  return { dp, port: dp.boundPort(0)! }
}

const h2cPool = (ports: number[]): BackendPool => ({ ...pool('p1', ports), protocol: 'h2c' })
/** A port without gRPC (h2 goes to the inner Bun.serve) and one that can carry it (node:http2 server). */
const plainPort = () => simple(0, [rule()], [pool('p1', [be.port])])
const grpcCapablePort = () => simple(0, [rule()], [h2cPool([h2cPort])])
const httpsPort = () => snapshot([port(0, [{ ...listener([vhost('*', [rule()])]), tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] } }], 'HTTPS')], [pool('p1', [be.port])])

function connect(url: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { rejectUnauthorized: false, servername: 'h2.test' })
    sessions.push(session)
    session.once('connect', () => resolve(session))
    session.once('error', reject)
  })
}

interface Answer {
  readonly status: number
  readonly headers: http2.IncomingHttpHeaders
  readonly body: string
}

function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/x', ':method': 'GET', ...headers }, { endStream: headers[':method'] !== 'POST' })
    if (headers[':method'] === 'POST') stream.end(Buffer.from([0, 0, 0, 0, 0]))
    let responseHeaders: http2.IncomingHttpHeaders = {}
    let body = ''
    stream.on('response', (h) => (responseHeaders = h))
    stream.setEncoding('utf8')
    stream.on('data', (d: string) => (body += d))
    stream.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body }))
    stream.on('error', reject)
  })
}

const GRPC_CALL = { ':method': 'POST', ':path': '/echo.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' }

async function expectShed(url: string): Promise<void> {
  const session = await connect(url)
  const before = overloadCounters.shed
  const plain = await request(session)
  expect(plain.status).toBe(503)
  expect(plain.headers['retry-after']).toBe('1')
  expect(plain.body).toBe('overloaded\n')
  const grpc = await request(session, GRPC_CALL)
  expect(grpc.status).toBe(200)
  expect(grpc.headers['grpc-status']).toBe('14')
  // The connection stays open: the next stream on it is answered (and shed) too.
  expect((await request(session)).status).toBe(503)
  expect(session.closed || session.destroyed).toBe(false)
  expect(overloadCounters.shed).toBe(before + 3)
}

describe('h2 streams are shed while the worker is overloaded', () => {
  test('h2c on a port without gRPC (inner Bun.serve): 503 + Retry-After, gRPC UNAVAILABLE', async () => {
    const { dp, port: p } = await start(plainPort(), { shedMemoryBytes: 1 })
    await eventually(() => dp.shedder.overloaded, 5000, 'overloaded')
    await expectShed(`http://127.0.0.1:${p}`)
  })

  test('h2c on a port that carries gRPC (node:http2 server): 503 + Retry-After, gRPC UNAVAILABLE', async () => {
    const { dp, port: p } = await start(grpcCapablePort(), { shedMemoryBytes: 1 })
    await eventually(() => dp.shedder.overloaded, 5000, 'overloaded')
    await expectShed(`http://127.0.0.1:${p}`)
  })

  test('h2 over TLS (ALPN): 503 + Retry-After, gRPC UNAVAILABLE', async () => {
    const { dp, port: p } = await start(httpsPort(), { shedMemoryBytes: 1 })
    await eventually(() => dp.shedder.overloaded, 5000, 'overloaded')
    await expectShed(`https://127.0.0.1:${p}`)
  })

  test('not overloaded: the same h2 requests are proxied', async () => {
    const { port: p } = await start(plainPort(), {})
    const session = await connect(`http://127.0.0.1:${p}`)
    const answer = await request(session)
    expect(answer.status).toBe(200)
    expect(answer.body).toBe('GET /x')
  })
})

describe('the concurrent request cap covers h2 streams', () => {
  test('over --max-concurrent-requests a new stream gets 503 + Retry-After without Connection: close; the session goes on', async () => {
    const slow = startRawBackend((_r, c) => void setTimeout(() => c.write(ok('slow')), 500))
    try {
      const { port: p } = await start(simple(0, [rule()], [pool('p1', [slow.port])]), { maxConcurrentRequests: 1 })
      const session = await connect(`http://127.0.0.1:${p}`)
      const first = request(session)
      await Bun.sleep(100)
      const second = await request(session)
      expect(second.status).toBe(503)
      expect(second.headers['retry-after']).toBe('1')
      expect(second.headers.connection).toBeUndefined()
      expect((await first).status).toBe(200)
      // Under the cap again: the same session is served.
      expect((await request(session)).status).toBe(200)
    } finally {
      slow.stop()
    }
  })
})

describe('connection caps count h2 connections', () => {
  test('per client address: a second h2 connection is refused at accept, the first keeps its streams', async () => {
    const { port: p } = await start(httpsPort(), { maxConnectionsPerClient: 1 })
    const refused = overloadCounters.refused.client
    const first = await connect(`https://127.0.0.1:${p}`)
    expect((await request(first)).status).toBe(200)
    const second = await connect(`https://127.0.0.1:${p}`).then(
      async (s) => (await request(s)).status,
      () => 0,
    ).catch(() => 0)
    expect(second).toBe(0)
    expect(overloadCounters.refused.client).toBe(refused + 1)
    expect((await request(first)).status).toBe(200)
  })
})
