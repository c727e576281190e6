/**
 * The pooled HTTP/1.1 upstream client over real sockets, against a byte-level server: framing
 * both ways, keep-alive reuse, stale connections, errors, backpressure, and that nothing is
 * added to or lost from what the caller asked to send.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { Http1Agent, UpstreamError, type Http1Request, type Http1Response } from '../../src/dataplane/upstream/http1/index.ts'
import { eventually, RawServer, readAll, response, type Responder } from './raw-server.ts'

const servers: RawServer[] = []
const agents: Http1Agent[] = []

afterEach(() => {
  for (const agent of agents.splice(0)) agent.closeAll()
  for (const server of servers.splice(0)) server.stop()
})

function setup(responder: Responder): { server: RawServer; agent: Http1Agent } {
  const server = new RawServer(responder)
  const agent = new Http1Agent({ housekeepingMs: 20 })
  servers.push(server)
  agents.push(agent)
  return { server, agent }
}

function get(target = '/', extra = ''): Http1Request {
  return { method: 'GET', target, headers: `host: upstream.test\r\n${extra}`, body: null }
}

async function ok(outcome: Promise<Http1Response | UpstreamError>): Promise<Http1Response> {
  const res = await outcome
  if (res instanceof UpstreamError) throw new Error(`expected a response, got ${res.kind}: ${res.message}`)
  return res
}

async function failure(outcome: Promise<Http1Response | UpstreamError>): Promise<UpstreamError> {
  const res = await outcome
  if (!(res instanceof UpstreamError)) throw new Error(`expected a failure, got status ${res.status}`)
  return res
}

const hello = (body = 'hello'): string => response('200 OK', [['Content-Length', String(body.length)]], body)

function headerValues(res: Http1Response, name: string): string[] {
  const values: string[] = []
  for (const [n, v] of res.headers) if (n.toLowerCase() === name) values.push(v)
  return values
}

describe('keep-alive', () => {
  test('sequential requests reuse one connection', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply(hello()))
    for (let i = 0; i < 5; i++) {
      const res = await ok(agent.request(server.endpoint, get(`/r${i}`)))
      expect(res.status).toBe(200)
      expect((await readAll(res.body)).toString()).toBe('hello')
    }
    expect(server.connections.length).toBe(1)
    expect(server.requests.map((r) => r.index)).toEqual([0, 1, 2, 3, 4])
  })

  test('Connection: close from the server is honoured: the next request opens a new connection', async () => {
    const { server, agent } = setup((_req, conn, reply) => {
      reply(response('200 OK', [['Content-Length', '2'], ['Connection', 'close']], 'ok'))
      conn.socket.end()
    })
    for (let i = 0; i < 3; i++) expect((await readAll((await ok(agent.request(server.endpoint, get()))).body)).toString()).toBe('ok')
    expect(server.connections.length).toBe(3)
  })

  test('concurrent requests use separate connections: no pipelining', async () => {
    const { server, agent } = setup((_req, _c, reply) => setTimeout(() => reply(hello()), 20))
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => ok(agent.request(server.endpoint, get(`/c${i}`)))))
    expect(results.every((r) => r.status === 200)).toBe(true)
    // Then more rounds on the pooled connections: never a second request before the first's response.
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 6 }, () => ok(agent.request(server.endpoint, get()))))
    expect(server.connections.length).toBe(6)
    expect(server.connections.every((c) => c.pipelinedBytes === 0)).toBe(true)
  })
})

describe('response framing', () => {
  test('content-length body split across many writes', async () => {
    const body = 'x'.repeat(100_000)
    const { server, agent } = setup((_req, conn, reply) => {
      reply(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`)
      for (let i = 0; i < body.length; i += 7000) conn.socket.write(body.slice(i, i + 7000))
    })
    const res = await ok(agent.request(server.endpoint, get()))
    expect((await readAll(res.body)).toString()).toBe(body)
    // Fully read and reusable: the next request goes over the same connection.
    await ok(agent.request(server.endpoint, get()))
    expect(server.connections.length).toBe(1)
  })

  test('chunked body with extensions, trailers and chunk boundaries split mid-line', async () => {
    const wire = '5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nx-trailer: t\r\n\r\n'
    const { server, agent } = setup((_req, conn, reply) => {
      reply('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
      // Drip the body 3 bytes at a time so every parser state sees a boundary.
      let i = 0
      const drip = () => {
        if (i >= wire.length) return
        conn.socket.write(wire.slice(i, (i += 3)))
        setTimeout(drip, 1)
      }
      drip()
    })
    const res = await ok(agent.request(server.endpoint, get()))
    expect((await readAll(res.body)).toString()).toBe('hello 0123456789')
    await ok(agent.request(server.endpoint, get()))
    expect(server.connections.length).toBe(1)
  })

  test('a chunked body that arrives whole comes back as bytes', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'))
    const res = await ok(agent.request(server.endpoint, get()))
    expect(res.body).toBeInstanceOf(Uint8Array)
    expect((await readAll(res.body)).toString()).toBe('abc')
  })

  test('close-delimited body ends at EOF and the connection is not reused', async () => {
    const { server, agent } = setup((_req, conn, reply) => {
      reply('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ')
      setTimeout(() => {
        conn.socket.write('part two')
        conn.socket.end()
      }, 10)
    })
    const res = await ok(agent.request(server.endpoint, get()))
    expect((await readAll(res.body)).toString()).toBe('part one, part two')
    await ok(agent.request(server.endpoint, get()))
    expect(server.connections.length).toBe(2)
  })

  test('HEAD, 204 and 304 have no body whatever Content-Length says, and the connection stays usable', async () => {
    const { server, agent } = setup((req, _c, reply) => {
      if (req.method === 'HEAD') return reply(response('200 OK', [['Content-Length', '1234']]))
      if (req.target === '/204') return reply(response('204 No Content', [['Content-Length', '10']]))
      if (req.target === '/304') return reply(response('304 Not Modified', [['Content-Length', '10'], ['ETag', '"v1"']]))
      reply(hello('after'))
    })
    const head = await ok(agent.request(server.endpoint, { ...get(), method: 'HEAD' }))
    expect(head.body).toBeNull()
    expect(headerValues(head, 'content-length')).toEqual(['1234'])
    expect((await ok(agent.request(server.endpoint, get('/204')))).body).toBeNull()
    const notModified = await ok(agent.request(server.endpoint, get('/304')))
    expect(notModified.status).toBe(304)
    expect(notModified.body).toBeNull()
    expect((await readAll((await ok(agent.request(server.endpoint, get('/x')))).body)).toString()).toBe('after')
    expect(server.connections.length).toBe(1)
  })

  test('1xx interim responses (100 Continue, 103 Early Hints) are skipped', async () => {
    const { server, agent } = setup((_req, conn, reply) => {
      reply('HTTP/1.1 100 Continue\r\n\r\n')
      setTimeout(() => conn.socket.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone'), 5)
    })
    const res = await ok(agent.request(server.endpoint, { ...get(), method: 'POST', body: new TextEncoder().encode('data') }))
    expect(res.status).toBe(201)
    expect(headerValues(res, 'link')).toEqual([])
    expect((await readAll(res.body)).toString()).toBe('done')
  })

  test('multiple Set-Cookie fields are kept apart; header case and order are kept', async () => {
    const { server, agent } = setup((_req, _c, reply) =>
      reply(response('200 OK', [['Set-Cookie', 'a=1; Path=/'], ['X-Mixed-Case', 'v'], ['set-cookie', 'b=2, c=3'], ['Content-Length', '0']])),
    )
    const res = await ok(agent.request(server.endpoint, get()))
    expect(headerValues(res, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2, c=3'])
    expect(res.headers).toEqual([['Set-Cookie', 'a=1; Path=/'], ['X-Mixed-Case', 'v'], ['set-cookie', 'b=2, c=3'], ['Content-Length', '0']])
  })

  test('bodies are passed through byte for byte, never decompressed', async () => {
    const gzipped = Bun.gzipSync(new TextEncoder().encode('compressed payload'))
    const { server, agent } = setup((_req, _c, reply) => {
      reply(`HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${gzipped.byteLength}\r\n\r\n`)
      reply(gzipped)
    })
    const res = await ok(agent.request(server.endpoint, get()))
    expect(Buffer.compare(await readAll(res.body), Buffer.from(gzipped))).toBe(0)
  })
})

describe('request framing', () => {
  test('the head is exactly what the caller gave, plus framing: no invented headers', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply(hello()))
    await ok(agent.request(server.endpoint, get('/p?q=1', 'x-custom: 1\r\n')))
    expect(server.requests[0]!.head).toBe('GET /p?q=1 HTTP/1.1\r\nhost: upstream.test\r\nx-custom: 1')
  })

  test('non-ASCII (obs-text) header bytes are written back as the same bytes', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply(hello()))
    await ok(agent.request(server.endpoint, get('/', 'x-name: caf\u00e9\r\n')))
    expect(server.requests[0]!.headers).toContainEqual(['x-name', 'caf\u00e9'])
  })

  test('byte bodies get Content-Length; empty announced bodies keep "content-length: 0"', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply(hello()))
    await ok(agent.request(server.endpoint, { method: 'POST', target: '/', headers: 'host: h\r\n', body: new TextEncoder().encode('abc') }))
    await ok(agent.request(server.endpoint, { method: 'POST', target: '/', headers: 'host: h\r\n', body: null, bodyLength: 0 }))
    expect(server.requests[0]!.body.toString()).toBe('abc')
    expect(server.requests[0]!.headers).toContainEqual(['content-length', '3'])
    expect(server.requests[1]!.headers).toContainEqual(['content-length', '0'])
  })

  test('a stream without a length is sent chunked, one with a length as-is', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply(hello()))
    const parts = ['first ', 'second ', 'third']
    const stream = () =>
      new ReadableStream<Uint8Array>({
        async start(controller) {
          for (const part of parts) {
            controller.enqueue(new TextEncoder().encode(part))
            await Bun.sleep(2)
          }
          controller.close()
        },
      })
    await ok(agent.request(server.endpoint, { method: 'PUT', target: '/', headers: 'host: h\r\n', body: stream() }))
    await ok(agent.request(server.endpoint, { method: 'PUT', target: '/', headers: 'host: h\r\n', body: stream(), bodyLength: 18 }))
    expect(server.requests[0]!.chunked).toBe(true)
    expect(server.requests[0]!.body.toString()).toBe('first second third')
    expect(server.requests[1]!.chunked).toBe(false)
    expect(server.requests[1]!.headers).toContainEqual(['content-length', '18'])
    expect(server.requests[1]!.body.toString()).toBe('first second third')
    // Both uploads completed cleanly, so the connection was reused.
    expect(server.connections.length).toBe(1)
  })

  test('a large upload is streamed with backpressure and arrives intact', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply(hello()))
    const chunk = new Uint8Array(256 * 1024).fill(7)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 32) return controller.close()
        sent++
        controller.enqueue(chunk)
      },
    })
    await ok(agent.request(server.endpoint, { method: 'POST', target: '/', headers: 'host: h\r\n', body }))
    expect(server.requests[0]!.body.byteLength).toBe(32 * chunk.byteLength)
  })
})

describe('stale pooled connections', () => {
  test('a connection the server closed while idle is dropped from the pool', async () => {
    const { server, agent } = setup((_req, conn, reply) => {
      reply(hello())
      // Keep-alive announced, but the server closes right after (idle timeout race).
      setTimeout(() => conn.socket.end(), 5)
    })
    await ok(agent.request(server.endpoint, get()))
    await eventually(() => server.connections[0]!.closed)
    await eventually(() => agent.stats()[0]!.idle === 0)
    const res = await ok(agent.request(server.endpoint, get()))
    expect(res.attempts).toBe(1)
    expect(server.connections.length).toBe(2)
  })

  test('an idempotent request on a pooled connection closed before any response byte is replayed once on a fresh one', async () => {
    const { server, agent } = setup((req, conn, reply) => {
      // The second request on the first connection meets a server that just gave up on it.
      if (conn.id === 0 && req.index === 1) return conn.socket.end()
      reply(hello('fresh'))
    })
    await ok(agent.request(server.endpoint, get()))
    const res = await ok(agent.request(server.endpoint, get()))
    expect((await readAll(res.body)).toString()).toBe('fresh')
    expect(res.attempts).toBe(2)
    expect(server.connections.length).toBe(2)
  })

  test('a streamed (non-replayable) request is not replayed: the failure surfaces', async () => {
    const { server, agent } = setup((req, conn, reply) => {
      if (conn.id === 0 && req.index === 1) return conn.socket.end()
      reply(hello())
    })
    await ok(agent.request(server.endpoint, get()))
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('once'))
        controller.close()
      },
    })
    const err = await failure(agent.request(server.endpoint, { method: 'POST', target: '/', headers: 'host: h\r\n', body }))
    expect(err.kind).toBe('reset')
    expect(err.attempts).toBe(1)
    expect(server.requests.length).toBe(2)
  })

  test('a POST with bytes in hand is replayed only when it carries an Idempotency-Key', async () => {
    const { server, agent } = setup((req, conn, reply) => {
      // Every second request on a connection meets a server that just gave up on it.
      if (req.index === 1) return conn.socket.end()
      reply(hello(`conn ${conn.id}`))
    })
    const body = new TextEncoder().encode('order=1')
    await ok(agent.request(server.endpoint, get()))
    const keyed = await ok(agent.request(server.endpoint, { method: 'POST', target: '/', headers: 'host: h\r\nIdempotency-Key: "8e03978e"\r\n', body }))
    expect(keyed.attempts).toBe(2)
    expect((await readAll(keyed.body)).toString()).toBe('conn 1')
    expect(server.requests.filter((r) => r.method === 'POST').map((r) => new TextDecoder().decode(r.body))).toEqual(['order=1', 'order=1'])
    // Without the key the same race surfaces: the server may have acted on the first copy.
    const plain = await failure(agent.request(server.endpoint, { method: 'POST', target: '/', headers: 'host: h\r\n', body }))
    expect([plain.kind, plain.attempts]).toEqual(['reset', 1])
  })

  test('a failure on a fresh connection is not replayed', async () => {
    const { server, agent } = setup((_req, conn) => conn.socket.end())
    const err = await failure(agent.request(server.endpoint, get()))
    expect(err.kind).toBe('reset')
    expect(server.requests.length).toBe(1)
  })
})

describe('errors', () => {
  test('connection refused', async () => {
    const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const port = probe.port
    probe.stop(true)
    const agent = new Http1Agent()
    agents.push(agent)
    const err = await failure(agent.request({ key: `127.0.0.1:${port}`, address: '127.0.0.1', port }, get()))
    expect(err.kind).toBe('refused')
  })

  test('reset before response headers', async () => {
    const { server, agent } = setup((_req, conn) => conn.socket.terminate())
    expect((await failure(agent.request(server.endpoint, get()))).kind).toBe('reset')
  })

  test('no response head in time → timeout, and the connection is discarded', async () => {
    const { server, agent } = setup(() => {})
    expect((await failure(agent.request(server.endpoint, get(), { timeoutMs: 50 }))).kind).toBe('timeout')
    await eventually(() => server.connections[0]!.closed)
  })

  test('a long head timeout is enforced by housekeeping (no timer per request)', async () => {
    const server = new RawServer(() => {})
    const agent = new Http1Agent({ housekeepingMs: 10, preciseTimeoutBelowMs: 20 })
    servers.push(server)
    agents.push(agent)
    expect((await failure(agent.request(server.endpoint, get(), { timeoutMs: 60 }))).kind).toBe('timeout')
    await eventually(() => server.connections[0]!.closed)
  })

  test('a malformed status line is a reset, not a crash', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply('HTTX/9 abc\r\n\r\n'))
    expect((await failure(agent.request(server.endpoint, get()))).kind).toBe('reset')
  })

  test('aborting while waiting for the head', async () => {
    const { server, agent } = setup(() => {})
    const controller = new AbortController()
    const pending = agent.request(server.endpoint, get(), { client: controller })
    await eventually(() => server.requests.length === 1)
    controller.abort()
    expect((await failure(pending)).kind).toBe('aborted')
  })

  test('the server closing mid-body errors the body stream', async () => {
    const { server, agent } = setup((_req, conn, reply) => {
      reply('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part of it')
      setTimeout(() => conn.socket.end(), 10)
    })
    const res = await ok(agent.request(server.endpoint, get()))
    expect(res.body).toBeInstanceOf(ReadableStream)
    await expect(readAll(res.body)).rejects.toThrow(/mid-body/)
  })

  test('a truncated chunked body errors the body stream', async () => {
    const { server, agent } = setup((_req, conn, reply) => {
      reply('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort')
      setTimeout(() => conn.socket.end(), 10)
    })
    const res = await ok(agent.request(server.endpoint, get()))
    await expect(readAll(res.body)).rejects.toThrow(/closed the connection mid-body|malformed/)
  })
})

describe('backpressure', () => {
  test('a slow consumer pauses the upstream socket: the server cannot push the whole body', async () => {
    const total = 64 * 1024 * 1024
    const piece = Buffer.alloc(256 * 1024, 1)
    let accepted = 0
    let blocked = false
    const { server, agent } = setup((req, conn, reply) => {
      if (req.target === '/next') return reply(hello())
      reply(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`)
      // Push until the kernel refuses (socket buffers full), then record that we are blocked.
      const push = () => {
        while (accepted < total) {
          const remaining = Math.min(piece.byteLength, total - accepted)
          const written = conn.socket.write(piece.subarray(0, remaining))
          accepted += Math.max(0, written)
          if (written < remaining) {
            blocked = true
            setTimeout(push, 5)
            return
          }
        }
      }
      push()
    })
    const res = await ok(agent.request(server.endpoint, get()))
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    // Read nothing until the server is stuck, and stays stuck while we do not read.
    await eventually(() => blocked)
    const stuckAt = accepted
    await Bun.sleep(100)
    // Bounded: socket buffers plus the stream's 64 KiB queue, far from the 64 MiB body.
    expect(accepted).toBeLessThan(16 * 1024 * 1024)
    expect(accepted - stuckAt).toBeLessThan(8 * 1024 * 1024)
    let received = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      received += value.byteLength
    }
    expect(received).toBe(total)
    // The connection went back to the pool reading again: the next exchange on it completes.
    const next = await ok(agent.request(server.endpoint, get('/next')))
    expect(next.status).toBe(200)
    expect(server.connections.length).toBe(1)
  })

  test('a body that ends while the socket is paused leaves a pooled connection that reads again', async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, 7)
    const { server, agent } = setup((req, _conn, reply) => {
      if (req.target === '/next') return reply(hello('next'))
      reply(`HTTP/1.1 200 OK\r\nContent-Length: ${body.byteLength}\r\n\r\n`)
      reply(body)
    })
    const res = await ok(agent.request(server.endpoint, get()))
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    let received = 0
    // A consumer slower than the socket: every read finds a full queue, up to the last one.
    for (;;) {
      await Bun.sleep(2)
      const { done, value } = await reader.read()
      if (done) break
      received += value.byteLength
    }
    expect(received).toBe(body.byteLength)
    const next = await ok(agent.request(server.endpoint, get('/next')))
    expect((await readAll(next.body)).toString()).toBe('next')
    expect(server.connections.length).toBe(1)
  })

  test('cancelling a body mid-way closes the connection instead of pooling it', async () => {
    const { server, agent } = setup((_req, _c, reply) => reply('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nsome'))
    const res = await ok(agent.request(server.endpoint, get()))
    await (res.body as ReadableStream<Uint8Array>).cancel()
    await eventually(() => server.connections[0]!.closed)
    expect(agent.stats()[0]).toMatchObject({ open: 0, idle: 0 })
  })
})
