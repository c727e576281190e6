/**
 * h2c backends (appProtocol kubernetes.io/h2c): requests go over HTTP/2 with prior knowledge,
 * bodies stream both ways, sessions are reused, and a session the backend ends (GOAWAY) is
 * replaced without failing the next request.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import http2, { type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import { closedPort, startDataplane, type Running } from '../dataplane/harness.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import type { BackendPool } from '../../src/ir/types.ts'
import { closeH2cSessions } from '../../src/dataplane/upstream/h2c.ts'

interface Seen {
  readonly headers: http2.IncomingHttpHeaders
  firstChunkAt?: number
}

let backend: Http2Server
let backendPort: number
const sessions = new Set<ServerHttp2Session>()
const seen: Seen[] = []

beforeAll(async () => {
  // /echo streams the request body back as it arrives; /drip sends two chunks 400 ms apart.
  backend = http2.createServer()
  backend.on('session', (session) => {
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
  })
  backend.on('stream', (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const record: Seen = { headers }
    seen.push(record)
    const path = String(headers[':path'])
    if (path.startsWith('/drip')) {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' })
      stream.write('first;')
      setTimeout(() => stream.end('second'), 400)
      return
    }
    stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'x-backend': 'h2c', 'set-cookie': ['a=1', 'b=2'] })
    stream.on('data', () => (record.firstChunkAt ??= Date.now()))
    stream.pipe(stream)
  })
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
  backendPort = (backend.address() as { port: number }).port
})

afterAll(async () => {
  closeH2cSessions()
  for (const session of sessions) session.destroy()
  await new Promise((resolve) => backend.close(resolve))
})

const h2cPool = (ports: number[]): BackendPool => ({ ...pool('p1', ports), protocol: 'h2c' })

async function withGateway(ports: number[], run: (gw: Running) => Promise<void>): Promise<void> {
  const gw = await startDataplane(simple(0, [rule()], [h2cPool(ports)]))
  try {
    await run(gw)
  } finally {
    await gw.stop()
  }
}

test('a request reaches the backend over h2c with its headers, minus connection-specific ones', async () => {
  await withGateway([backendPort], async (gw) => {
    const res = await fetch(`${gw.base}/echo?q=1`, { method: 'POST', body: 'hello h2c', headers: { host: 'svc.test', 'x-custom': 'yes', connection: 'keep-alive, x-hop', 'x-hop': 'drop-me' } })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('hello h2c')
    expect(res.headers.get('x-backend')).toBe('h2c')
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2'])
    const headers = seen.at(-1)!.headers
    expect(headers[':path']).toBe('/echo?q=1')
    expect(headers[':authority']).toBe('svc.test')
    expect(headers['x-custom']).toBe('yes')
    expect(headers['x-hop']).toBeUndefined()
    expect(headers['x-forwarded-for']).toBe('127.0.0.1')
  })
})

test('bodies stream both ways: the backend sees the upload before it ends, the client sees the first chunk early', async () => {
  await withGateway([backendPort], async (gw) => {
    const encoder = new TextEncoder()
    const before = seen.length
    let backendHadFirstChunk = false
    const upload = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode('part1;'))
        for (let i = 0; i < 100 && seen[before]?.firstChunkAt === undefined; i++) await Bun.sleep(10)
        backendHadFirstChunk = seen[before]?.firstChunkAt !== undefined
        controller.enqueue(encoder.encode('part2'))
        controller.close()
      },
    })
    const res = await fetch(`${gw.base}/echo`, { method: 'POST', body: upload, duplex: 'half' } as RequestInit)
    expect(await res.text()).toBe('part1;part2')
    expect(backendHadFirstChunk).toBe(true)

    const started = Date.now()
    const drip = await fetch(`${gw.base}/drip`)
    const reader = drip.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe('first;')
    expect(Date.now() - started).toBeLessThan(350)
    let rest = ''
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value)
    expect(rest).toBe('second')
  })
})

test('sessions are reused, and one ended by GOAWAY is replaced', async () => {
  closeH2cSessions()
  await withGateway([backendPort], async (gw) => {
    await Promise.all(Array.from({ length: 20 }, () => fetch(`${gw.base}/echo`).then((r) => r.text())))
    expect(sessions.size).toBe(1)
    for (const session of sessions) session.close()
    await Bun.sleep(50)
    const res = await fetch(`${gw.base}/echo`, { method: 'POST', body: 'after goaway' })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('after goaway')
    expect(sessions.size).toBe(1)
  })
})

test('an h2c backend that refuses connections answers 502', async () => {
  await withGateway([await closedPort()], async (gw) => {
    expect((await fetch(`${gw.base}/echo`)).status).toBe(502)
  })
})
