/**
 * PROXY protocol and per-port connection settings on plain-HTTP listeners (the HTTP front):
 * the header's source address becomes the client address on both paths (direct: X-Forwarded-For
 * and Forwarded built by the front; inner pipeline: through ctx.peers), a port that requires the
 * header closes connections without one and never answers them, optional mode takes both, and
 * maxConnections / idleTimeoutMs / requestReceivedTimeoutMs apply per port. Real clients: curl
 * --haproxy-protocol (v1 with the real addresses) and headers written by hand over raw sockets.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import type { ConnectionSettings } from '../../src/policy/kind.ts'
import type { Snapshot } from '../../src/ir/types.ts'
import { buildProxyHeader } from '../../src/dataplane/proxy-protocol.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { field, startRawBackend, type RawBackend } from '../front/support/backend.ts'
import { RawClient, req } from '../front/support/client.ts'
import { startFront, type Front } from '../front/support/gateway.ts'

let backend: RawBackend
let gw: Front | undefined

beforeAll(() => {
  backend = startRawBackend()
})
afterAll(() => backend.stop())
afterEach(async () => {
  await gw?.stop()
  gw = undefined
})

function snap(connection: ConnectionSettings | undefined, revision = 1): Snapshot {
  const base = simple(
    0,
    [
      rule({ match: { path: { type: 'PathPrefix', value: '/filtered' } }, filters: [{ type: 'RequestHeaderModifier', set: [['x-f', '1']], add: [], remove: [] }] }),
      rule(),
    ],
    [pool('p1', [backend.port])],
    revision,
  )
  return { ...base, http: [{ ...base.http[0]!, connection }] }
}

const V1 = 'PROXY TCP4 203.0.113.7 192.0.2.1 56324 80\r\n'
const V2 = buildProxyHeader('V2', { sourceAddress: '2001:db8::7', sourcePort: 40000, destinationAddress: '2001:db8::1', destinationPort: 80 })

async function curl(args: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(['curl', '-s', '--max-time', '5', ...args], { stdout: 'pipe', stderr: 'pipe' })
  const out = await new Response(proc.stdout).text()
  return { code: await proc.exited, out }
}

describe('PROXY protocol on an HTTP listener', () => {
  test('v1 written by hand: the backend sees the header source in X-Forwarded-For and Forwarded (direct path)', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: false } }))
    const client = await RawClient.connect(gw.port)
    client.write(V1 + req('GET', '/direct'))
    const res = await client.readResponse()
    expect(res.status).toBe(200)
    const seen = backend.requests.at(-1)!
    expect(field(seen, 'x-forwarded-for')).toBe('203.0.113.7')
    expect(field(seen, 'forwarded')).toContain('for=203.0.113.7')
    // The PROXY line never reaches the backend.
    expect(seen.head.startsWith('GET /direct HTTP/1.1\r\n')).toBe(true)
    // Keep-alive: the second request on the connection keeps the header's address.
    client.write(req('GET', '/again', 'X-Forwarded-For: 10.9.9.9'))
    await client.readResponse()
    expect(field(backend.requests.at(-1)!, 'x-forwarded-for')).toBe('10.9.9.9, 203.0.113.7')
    client.destroy()
  })

  test('v2 (IPv6) in one-byte writes, then the inner pipeline (a filtered rule) sees it too', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: false } }))
    const client = await RawClient.connect(gw.port)
    for (const byte of V2) {
      client.write(Uint8Array.of(byte))
      await Bun.sleep(1)
    }
    client.write(req('GET', '/filtered'))
    const res = await client.readResponse()
    expect(res.status).toBe(200)
    const seen = backend.requests.at(-1)!
    expect(field(seen, 'x-f')).toBe('1')
    expect(field(seen, 'x-forwarded-for')).toBe('2001:db8::7')
    client.destroy()
  })

  test('a port that requires the header closes a plain connection without answering', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: false } }))
    const before = backend.requests.length
    const client = await RawClient.connect(gw.port)
    client.write(req('GET', '/direct'))
    expect(await client.waitClosed()).toBe(true)
    expect(client.unread).toBe('')
    expect(backend.requests.length).toBe(before)
  })

  test('a malformed header is closed without an answer', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: true } }))
    for (const bad of ['PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n', `PROXY UNKNOWN ${'x'.repeat(120)}`]) {
      const client = await RawClient.connect(gw.port)
      client.write(bad + req('GET', '/direct'))
      expect(await client.waitClosed()).toBe(true)
      expect(client.unread).toBe('')
    }
  })

  test('a header that never completes is cut at the header timeout', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: false }, requestReceivedTimeoutMs: 300 }))
    const client = await RawClient.connect(gw.port)
    client.write('PROXY TCP4 ')
    const started = Date.now()
    expect(await client.waitClosed(3000)).toBe(true)
    expect(Date.now() - started).toBeLessThan(1500)
    expect(client.unread).toBe('')
  })

  test('optional: connections with and without a header are both served', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: true } }))
    const plain = await RawClient.connect(gw.port)
    plain.write(req('GET', '/direct'))
    expect((await plain.readResponse()).status).toBe(200)
    expect(field(backend.requests.at(-1)!, 'x-forwarded-for')).toBe('127.0.0.1')
    // Leading empty lines look like the start of a v2 signature until the fifth byte.
    plain.write(`\r\n\r\n${req('GET', '/direct')}`)
    expect((await plain.readResponse()).status).toBe(200)
    plain.destroy()
    const proxied = await RawClient.connect(gw.port)
    proxied.write(V1)
    await Bun.sleep(20)
    proxied.write(req('GET', '/direct'))
    expect((await proxied.readResponse()).status).toBe(200)
    expect(field(backend.requests.at(-1)!, 'x-forwarded-for')).toBe('203.0.113.7')
    proxied.destroy()
  })

  test('curl --haproxy-protocol is accepted; plain curl is refused', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: false } }))
    const ok = await curl(['--haproxy-protocol', '--interface', '127.0.0.3', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${gw.port}/curl`])
    expect(ok).toEqual({ code: 0, out: '200' })
    const seen = backend.requests.at(-1)!
    expect(seen.target).toBe('/curl')
    expect(field(seen, 'x-forwarded-for')).toBe('127.0.0.3')
    const refused = await curl(['-o', '/dev/null', `http://127.0.0.1:${gw.port}/curl`])
    expect(refused.code).toBe(52) // empty reply from server
  })

  test('the setting follows snapshots: new connections get the new setting', async () => {
    gw = await startFront(snap({ proxyProtocol: { optional: false } }))
    const held = await RawClient.connect(gw.port)
    held.write(V1)
    await gw.dp.apply(snap(undefined, 2))
    const plain = await RawClient.connect(gw.port)
    plain.write(req('GET', '/direct'))
    expect((await plain.readResponse()).status).toBe(200)
    // The connection accepted under the old setting keeps its header.
    held.write(req('GET', '/direct'))
    expect((await held.readResponse()).status).toBe(200)
    expect(field(backend.requests.at(-1)!, 'x-forwarded-for')).toBe('203.0.113.7')
    await gw.dp.apply(snap({ proxyProtocol: { optional: false } }, 3))
    const refused = await RawClient.connect(gw.port)
    refused.write(req('GET', '/direct'))
    expect(await refused.waitClosed()).toBe(true)
    plain.destroy()
    held.destroy()
  })
})

describe('connection settings on an HTTP listener', () => {
  test('maxConnections: over the limit a new connection is closed at once; a freed slot is reused', async () => {
    gw = await startFront(snap({ maxConnections: 2 }))
    const a = await RawClient.connect(gw.port)
    const b = await RawClient.connect(gw.port)
    a.write(req('GET', '/direct'))
    expect((await a.readResponse()).status).toBe(200)
    const c = await RawClient.connect(gw.port)
    expect(await c.waitClosed()).toBe(true)
    expect(c.unread).toBe('')
    // Slots come back on every close path: a client that goes away, and one closed by the gateway.
    a.destroy()
    b.write('garbage\r\n\r\n')
    await b.readResponse()
    await b.waitClosed()
    await Bun.sleep(50)
    const d = await RawClient.connect(gw.port)
    const e = await RawClient.connect(gw.port)
    d.write(req('GET', '/direct'))
    e.write(req('GET', '/direct'))
    expect((await d.readResponse()).status).toBe(200)
    expect((await e.readResponse()).status).toBe(200)
    d.destroy()
    e.destroy()
  })

  test('maxConnections counts connections still reading their PROXY header', async () => {
    gw = await startFront(snap({ maxConnections: 1, proxyProtocol: { optional: false } }))
    const a = await RawClient.connect(gw.port)
    a.write('PROXY ')
    const b = await RawClient.connect(gw.port)
    expect(await b.waitClosed()).toBe(true)
    a.destroy()
    await Bun.sleep(50)
    const c = await RawClient.connect(gw.port)
    c.write(V1 + req('GET', '/direct'))
    expect((await c.readResponse()).status).toBe(200)
    c.destroy()
  })

  test('idleTimeoutMs closes an idle keep-alive connection (the global default is 15 s)', async () => {
    gw = await startFront(snap({ idleTimeoutMs: 300 }))
    const client = await RawClient.connect(gw.port)
    client.write(req('GET', '/direct'))
    expect((await client.readResponse()).status).toBe(200)
    const started = Date.now()
    expect(await client.waitClosed(3000)).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    expect(Date.now() - started).toBeLessThan(1500)
  })

  test('requestReceivedTimeoutMs: a head that does not complete in time gets 408', async () => {
    gw = await startFront(snap({ requestReceivedTimeoutMs: 300 }))
    const client = await RawClient.connect(gw.port)
    client.write('GET /direct HTTP/1.1\r\nHost: a')
    const res = await client.readResponse({ timeoutMs: 3000 })
    expect(res.status).toBe(408)
  })
})
