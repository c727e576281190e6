/**
 * Through the data plane (Bun.serve → proxy → own HTTP/1.1 client → byte-level upstream): what
 * the upstream receives and what the client gets back, byte by byte where it matters.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { rawRequest, startDataplane, type Running } from '../dataplane/harness.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { Http1Agent } from '../../src/dataplane/upstream/http1/index.ts'
import { eventually, RawServer, response } from './raw-server.ts'

let upstream: RawServer
let gw: Running

beforeAll(async () => {
  upstream = new RawServer((req, _conn, reply) => {
    switch (req.target) {
      case '/cookies':
        return reply(response('200 OK', [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['Content-Type', 'text/plain'], ['Content-Length', '2']], 'ok'))
      case '/hop':
        return reply(response('200 OK', [['Connection', 'x-secret, keep-alive'], ['X-Secret', 's'], ['Keep-Alive', 'timeout=5'], ['X-Kept', 'k'], ['Content-Type', 'text/plain'], ['Content-Length', '2']], 'ok'))
      case '/untyped':
        return reply(response('200 OK', [['Content-Length', '3']], 'raw'))
      case '/chunked':
        return reply('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwhol\r\n1\r\ne\r\n0\r\n\r\n')
      case '/gzip': {
        const gz = Bun.gzipSync(new TextEncoder().encode('zipped'))
        reply(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: ${gz.byteLength}\r\n\r\n`)
        return reply(gz)
      }
      default:
        return reply(response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(req.body.byteLength)]], req.body.toString('latin1')))
    }
  })
  gw = await startDataplane(simple(0, [rule()], [pool('p1', [upstream.port])]))
})

afterAll(async () => {
  await gw.stop()
  upstream.stop()
})

function namesOf(head: string): string[] {
  return head.split('\r\n').slice(1).map((line) => line.slice(0, line.indexOf(':')).toLowerCase())
}

describe('request side', () => {
  test('only the client headers plus the forwarding headers reach the upstream', async () => {
    const before = upstream.requests.length
    await rawRequest(gw.port, 'GET /exact HTTP/1.1\r\nHost: app.test\r\nX-One: 1\r\nConnection: close\r\n\r\n')
    const seen = upstream.requests[before]!
    expect(seen.head.split('\r\n')[0]).toBe('GET /exact HTTP/1.1')
    expect(namesOf(seen.head).sort()).toEqual(['forwarded', 'host', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-one', 'x-request-id'])
    expect(seen.headers).toContainEqual(['host', 'app.test'])
  })

  test('fields nominated by the client Connection header are dropped', async () => {
    const before = upstream.requests.length
    await rawRequest(gw.port, 'GET /n HTTP/1.1\r\nHost: app.test\r\nConnection: x-hop, close\r\nX-Hop: 1\r\nX-Stay: 2\r\n\r\n')
    const names = namesOf(upstream.requests[before]!.head)
    expect(names).toContain('x-stay')
    expect(names).not.toContain('x-hop')
    expect(names).not.toContain('connection')
  })

  test('a request body with Content-Length and a chunked one both arrive intact', async () => {
    const before = upstream.requests.length
    const fixed = await rawRequest(gw.port, 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n', 'hello')
    const chunked = await rawRequest(gw.port, 'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n', '3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n')
    expect(fixed.endsWith('hello')).toBe(true)
    expect(chunked.endsWith('abcde')).toBe(true)
    expect(upstream.requests[before]!.body.toString()).toBe('hello')
    expect(upstream.requests[before + 1]!.body.toString()).toBe('abcde')
  })
})

describe('response side', () => {
  test('multiple Set-Cookie fields reach the client separately', async () => {
    const res = await fetch(`${gw.base}/cookies`)
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2'])
  })

  test('hop-by-hop fields and those the upstream Connection header nominates are removed', async () => {
    const res = await fetch(`${gw.base}/hop`)
    expect(res.headers.get('x-kept')).toBe('k')
    expect(res.headers.get('x-secret')).toBeNull()
    expect(res.headers.get('keep-alive')).toBeNull()
  })

  test('no Content-Type is invented for a body without one', async () => {
    const raw = await rawRequest(gw.port, 'GET /untyped HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(raw.toLowerCase()).not.toContain('content-type')
    expect(raw.endsWith('raw')).toBe(true)
  })

  test('a chunked upstream body is relayed whole; compressed bodies are never inflated', async () => {
    expect(await (await fetch(`${gw.base}/chunked`)).text()).toBe('whole')
    const raw = await rawRequest(gw.port, 'GET /gzip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(raw.toLowerCase()).toContain('content-encoding: gzip')
    const body = Buffer.from(raw.slice(raw.indexOf('\r\n\r\n') + 4), 'latin1')
    expect(new TextDecoder().decode(Bun.gunzipSync(body))).toBe('zipped')
  })

  test('upstream connections are pooled across client requests', async () => {
    const connectionsBefore = upstream.connections.length
    for (let i = 0; i < 10; i++) await (await fetch(`${gw.base}/cookies`)).text()
    expect(upstream.connections.length - connectionsBefore).toBeLessThanOrEqual(1)
  })
})

describe('idle connections', () => {
  test('are closed after the idle timeout', async () => {
    const server = new RawServer((_req, _conn, reply) => reply(response('200 OK', [['Content-Length', '0']])))
    const agent = new Http1Agent({ idleTimeoutMs: 40, housekeepingMs: 10 })
    try {
      await agent.request(server.endpoint, { method: 'GET', target: '/', headers: 'host: h\r\n', body: null })
      expect(agent.stats()[0]!.idle).toBe(1)
      await eventually(() => server.connections[0]!.closed)
      expect(agent.stats()[0]).toMatchObject({ open: 0, idle: 0 })
    } finally {
      agent.closeAll()
      server.stop()
    }
  })
})
