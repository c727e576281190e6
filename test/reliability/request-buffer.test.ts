/**
 * Request buffering (issue 21): bodies up to --request-buffer-size are received whole before the
 * backend is called, so slow uploads hold no backend connection (measured before: 200 slow POSTs
 * held 202 upstream connections; nginx: 1); larger bodies stream; all held bodies of a worker stay
 * under --request-buffer-total; BackendTrafficPolicy requestBuffer.limit buffers a route's bodies
 * up to its limit and refuses larger ones with 413. Real sockets, in-process front.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from '../front/support/backend.ts'
import { startFront, type Front } from '../front/support/gateway.ts'
import { heldRequestBytes } from '../../src/dataplane/http/front/request-buffer.ts'
import { statusesOf } from './support/raw.ts'
import type { PolicyIr } from '../../src/policy/kind.ts'

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const bufferPolicy = (limitBytes: number) => [{ name: 'requestBuffer', id: 'backendtrafficpolicy/test/buf#requestBuffer', spec: { limitBytes } } as PolicyIr]
const filter = [{ type: 'RequestHeaderModifier' as const, set: [['x-f', '1']] as [string, string][], add: [], remove: [] }]
const routes = () => [
  port(0, [
    listener([
      vhost('*', [
        rule({ match: prefix('/policy'), policies: bufferPolicy(1000) }),
        rule({ match: prefix('/filtered'), filters: filter }),
        rule({ match: prefix('/') }),
      ]),
    ]),
  ]),
]

let be: RawBackend
/** Default buffering (64 KiB per request). */
let gw: Front
/** Buffering off: bodies stream, as before. */
let streaming: Front
/** 1000-byte buffers, 1500 bytes per worker, body deadline 1 s. */
let small: Front

beforeAll(async () => {
  be = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target} ${r.body.length}`)))
  const snap = () => snapshot(routes(), [pool('p1', [be.port])])
  gw = await startFront(snap())
  streaming = await startFront(snap(), { requestBufferBytes: 0 })
  small = await startFront(snap(), { requestBufferBytes: 1000, requestBufferTotalBytes: 1500, bodyTimeoutMs: 1000 })
})

afterAll(async () => {
  await gw.stop()
  await streaming.stop()
  await small.stop()
  be.stop()
})

/** A raw client: everything it received, and when it closed. */
function client(p: number): Promise<{ s: net.Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    let text = ''
    let closedResolve: () => void = () => {}
    const closed = new Promise<void>((r) => (closedResolve = r))
    const s = net.connect(p, '127.0.0.1', () => resolve({ s, text: () => text, closed }))
    s.setEncoding('latin1')
    s.on('data', (d: string) => (text += d))
    s.on('close', () => closedResolve())
    s.on('error', reject)
  })
}

async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

const head = (path: string, ...fields: string[]) => `POST ${path} HTTP/1.1\r\nHost: a\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`

describe('request buffering', () => {
  test('200 slow POSTs hold no backend connection while their bodies arrive, and ~1 after (streaming: 200)', async () => {
    const n = 200
    const seen = (tag: string) => be.received().split(`POST /${tag}/`).length - 1
    const run = async (front: Front, tag: string) => {
      const acceptedBefore = be.accepted()
      const requestsBefore = be.requests.length
      const clients = await Promise.all(Array.from({ length: n }, () => client(front.port)))
      for (const [i, c] of clients.entries()) c.s.write(`${head(`/${tag}/${i}`, 'Content-Length: 20')}0123456789`)
      let whileSlow: { heads: number; open: number }
      if (front === gw) {
        // Every first half is held by the front (in this process): nothing reached the backend.
        await until(() => heldRequestBytes() >= n * 10, 10_000, 'bodies held')
        whileSlow = { heads: seen(tag), open: be.open() }
      } else {
        await until(() => seen(tag) >= n, 10_000, 'upstream requests')
        whileSlow = { heads: seen(tag), open: be.open() }
      }
      // The uploads finish one after another, as slow clients' do.
      for (const c of clients) {
        c.s.write('abcdefghij')
        await until(() => statusesOf(c.text()).length === 1, 10_000, 'answer')
      }
      for (const c of clients) c.s.destroy()
      const statuses = clients.map((c) => statusesOf(c.text())[0])
      expect(new Set(statuses)).toEqual(new Set([200]))
      expect(be.requests.length - requestsBefore).toBe(n)
      for (const r of be.requests.slice(requestsBefore)) expect(r.body).toBe('0123456789abcdefghij')
      return { ...whileSlow, accepted: be.accepted() - acceptedBefore }
    }
    const buffered = await run(gw, 'buffered')
    const streamed = await run(streaming, 'streamed')
    expect(buffered.heads).toBe(0)
    // One pooled connection serves them all (a few more if a link is closed meanwhile).
    expect(buffered.accepted).toBeLessThanOrEqual(5)
    // Streaming: every slow request holds a backend connection of its own.
    expect(streamed.heads).toBe(n)
    expect(streamed.open).toBeGreaterThanOrEqual(n)
    expect(heldRequestBytes()).toBe(0)
  }, 60_000)

  test('a chunked body streams by default (it may be a deliberate stream)', async () => {
    const c = await client(gw.port)
    c.s.write(`${head('/streamed-chunks', 'Transfer-Encoding: chunked')}5\r\nhello\r\n`)
    await until(() => be.received().includes('POST /streamed-chunks '), 5000, 'upstream request head')
    c.s.write('0\r\n\r\n')
    await until(() => statusesOf(c.text()).length === 1)
    c.s.destroy()
  })

  test('under a requestBuffer policy a chunked body is held until its last chunk and forwarded intact', async () => {
    const before = be.requests.length
    const c = await client(gw.port)
    c.s.write(`${head('/policy/chunked', 'Transfer-Encoding: chunked')}5\r\nhello\r\n`)
    await until(() => heldRequestBytes() > 0, 5000, 'held')
    c.s.write('6\r\n world\r\n')
    await Bun.sleep(50)
    expect(be.requests.length).toBe(before)
    expect(be.received()).not.toContain('POST /policy/chunked ')
    c.s.write('0\r\n\r\n')
    await until(() => statusesOf(c.text()).length === 1)
    c.s.destroy()
    expect(be.requests.at(-1)!.rawBody).toBe('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
  })

  test('a held body on the pipeline path (filters), and a request pipelined behind it', async () => {
    const c = await client(gw.port)
    c.s.write(`${head('/filtered/up', 'Content-Length: 10')}01234`)
    await until(() => heldRequestBytes() > 0, 5000, 'held')
    c.s.write(`56789GET /after HTTP/1.1\r\nHost: a\r\n\r\n`)
    await until(() => statusesOf(c.text()).length === 2)
    c.s.destroy()
    expect(c.text()).toContain('POST /filtered/up 10')
    expect(c.text()).toContain('GET /after 0')
  })

  test('a body larger than the buffer streams at once', async () => {
    const c = await client(small.port)
    c.s.write(`${head('/big', 'Content-Length: 5000')}${'x'.repeat(100)}`)
    // The backend is called before the body is complete.
    await until(() => be.received().includes('POST /big '), 5000, 'upstream request head')
    c.s.write('y'.repeat(4900))
    await until(() => statusesOf(c.text()).length === 1)
    c.s.destroy()
    expect(c.text()).toContain('POST /big 5000')
  })

  test('past the worker total, further bodies stream instead of waiting for memory', async () => {
    const a = await client(small.port)
    a.s.write(`${head('/a', 'Content-Length: 1000')}${'a'.repeat(800)}`)
    await until(() => heldRequestBytes() >= 800, 5000, 'first held')
    const b = await client(small.port)
    // 800 + 800 > 1500: the second one goes upstream with what it has.
    b.s.write(`${head('/b', 'Content-Length: 1000')}${'b'.repeat(800)}`)
    await until(() => be.received().includes('POST /b '), 5000, 'second streams')
    expect(heldRequestBytes()).toBe(800)
    expect(be.received()).not.toContain('POST /a ')
    a.s.write('a'.repeat(200))
    b.s.write('b'.repeat(200))
    await until(() => statusesOf(a.text()).length === 1 && statusesOf(b.text()).length === 1)
    a.s.destroy()
    b.s.destroy()
    expect(a.text()).toContain('POST /a 1000')
    expect(b.text()).toContain('POST /b 1000')
    await until(() => heldRequestBytes() === 0, 2000, 'released')
  })

  test('a held upload past the body deadline: 408, and the backend never saw it', async () => {
    const c = await client(small.port)
    c.s.write(`${head('/stalled', 'Content-Length: 100')}0123456789`)
    await c.closed
    expect(statusesOf(c.text())).toEqual([408])
    expect(be.received()).not.toContain('POST /stalled ')
    expect(heldRequestBytes()).toBe(0)
  })

  test('a client that goes away mid-body releases what was held', async () => {
    const c = await client(gw.port)
    c.s.write(`${head('/gone', 'Content-Length: 100')}0123456789`)
    await until(() => heldRequestBytes() >= 10, 5000, 'held')
    c.s.destroy()
    await until(() => heldRequestBytes() === 0, 5000, 'released')
  })

  test('a half-close mid-body: 400', async () => {
    const c = await client(gw.port)
    c.s.write(`${head('/half', 'Content-Length: 100')}0123456789`)
    await until(() => heldRequestBytes() >= 10, 5000, 'held')
    c.s.end()
    await c.closed
    expect(statusesOf(c.text())).toEqual([400])
  })
})

describe('BackendTrafficPolicy requestBuffer', () => {
  test('a Content-Length over the limit: 413 at once', async () => {
    const before = be.requests.length
    const c = await client(gw.port)
    c.s.write(`${head('/policy/up', 'Content-Length: 2000')}xx`)
    await c.closed
    expect(statusesOf(c.text())).toEqual([413])
    expect(be.requests.length).toBe(before)
  })

  test('a chunked body growing over the limit: 413, the backend never called', async () => {
    const c = await client(gw.port)
    c.s.write(`${head('/policy/chunks', 'Transfer-Encoding: chunked')}${'200\r\n' + 'z'.repeat(0x200) + '\r\n'}`)
    c.s.write(`${'200\r\n' + 'z'.repeat(0x200) + '\r\n'}`)
    await c.closed
    expect(statusesOf(c.text())).toEqual([413])
    expect(be.received()).not.toContain('POST /policy/chunks ')
  })

  test('within the limit: held whole, then forwarded (even with buffering off by default)', async () => {
    const c = await client(streaming.port)
    c.s.write(`${head('/policy/ok', 'Content-Length: 900')}${'p'.repeat(450)}`)
    await until(() => heldRequestBytes() >= 450, 5000, 'held')
    expect(be.received()).not.toContain('POST /policy/ok ')
    c.s.write('q'.repeat(450))
    await until(() => statusesOf(c.text()).length === 1)
    c.s.destroy()
    expect(c.text()).toContain('POST /policy/ok 900')
  })
})

describe('requestBuffer in a BackendTrafficPolicy manifest', () => {
  test('limit as a quantity becomes the feature; an invalid one is refused', async () => {
    const { backendTrafficPolicy } = await import('../../src/policy/backend-traffic/translate.ts')
    const { validate } = await import('../../src/policy/schema.ts')
    const ctx = {} as never
    expect(backendTrafficPolicy.features({ requestBuffer: { limit: '10Ki' } }, ctx)).toEqual([{ scope: 'request', name: 'requestBuffer', spec: { limitBytes: 10240 } }])
    expect(backendTrafficPolicy.features({ requestBuffer: { limit: 4096 } }, ctx)).toEqual([{ scope: 'request', name: 'requestBuffer', spec: { limitBytes: 4096 } }])
    const spec = { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'r' }], requestBuffer: { limit: '1Mi' } }
    expect(validate(backendTrafficPolicy.schema, spec, 'spec').errors).toEqual([])
    expect(validate(backendTrafficPolicy.schema, spec, 'spec').unsupported).toEqual([])
    expect(validate(backendTrafficPolicy.schema, { ...spec, requestBuffer: { limit: 'lots' } }, 'spec').errors.length).toBeGreaterThan(0)
  })
})
