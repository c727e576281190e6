/** WebSocket proxying end to end: real client, real gateway, real backend, all on loopback. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { closedPort, startDataplane } from '../dataplane/harness.ts'
import { backend, pool, rule, simple } from '../dataplane/ir.ts'
import type { BackendPool } from '../../src/ir/types.ts'
import { startWsBackend, type WsBackend } from './support/ws-backend.ts'
import { TestClient } from './support/client.ts'

let b1: WsBackend
let b2: WsBackend

beforeAll(() => {
  b1 = startWsBackend()
  b2 = startWsBackend()
})
afterAll(async () => {
  await b1.stop()
  await b2.stop()
})

const wsUrl = (port: number, path: string) => `ws://127.0.0.1:${port}${path}`

function wsPool(key: string, ports: number[]): BackendPool {
  return { ...pool(key, ports), protocol: 'ws' }
}

/** Sends a raw upgrade request and returns the response head (status line and headers). */
function rawUpgrade(port: number, path: string, extra = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let buffer = ''
    socket.on('data', (d) => {
      buffer += d.toString('latin1')
      const end = buffer.indexOf('\r\n\r\n')
      if (end >= 0) {
        socket.destroy()
        resolve(buffer.slice(0, end))
      }
    })
    socket.on('error', reject)
    socket.on('close', () => resolve(buffer))
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    )
  })
}

describe('websocket echo through the gateway', () => {
  test('text, binary and a 5 MiB binary frame come back intact', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    try {
      const client = await TestClient.connect(wsUrl(gw.port, '/echo'))
      client.ws.send('hello')
      expect(await client.next()).toBe('hello')
      const small = Buffer.from([0, 1, 2, 255])
      client.ws.send(small)
      const echoed = await client.next()
      expect(Buffer.isBuffer(echoed)).toBe(true)
      expect(Buffer.compare(echoed as Buffer, small)).toBe(0)
      const big = Buffer.alloc(5 * 1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
      client.ws.send(big)
      const bigEcho = (await client.next(10_000)) as Buffer
      expect(bigEcho.length).toBe(big.length)
      expect(Buffer.compare(bigEcho, big)).toBe(0)
      client.ws.close(1000)
      await client.closed
    } finally {
      await gw.stop()
    }
  })

  test('the subprotocol is the one the backend chose; handshake headers are forwarded', async () => {
    const gw = await startDataplane(simple(0, [rule()], [wsPool('p1', [b1.port])]))
    try {
      const before = b1.handshakes.length
      const client = await TestClient.connect(wsUrl(gw.port, '/echo?q=1'), {
        protocols: ['chat.v1', 'chat.v2'],
        headers: { cookie: 'session=abc; theme=dark', authorization: 'Bearer token-1', 'x-forwarded-for': '203.0.113.9' },
      } as Bun.WebSocketOptions)
      // The test backend picks the last offer: the gateway must not pick for it.
      expect(client.ws.protocol).toBe('chat.v2')
      const handshake = b1.handshakes[before]!
      expect(handshake.path).toBe('/echo?q=1')
      expect(handshake.headers.cookie).toBe('session=abc; theme=dark')
      expect(handshake.headers.authorization).toBe('Bearer token-1')
      expect(handshake.headers['sec-websocket-protocol']).toBe('chat.v1, chat.v2')
      expect(handshake.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
      expect(handshake.headers['x-forwarded-proto']).toBe('http')
      expect(handshake.headers.host).toBe(`127.0.0.1:${gw.port}`)
      client.ws.close(1000)
      await client.closed
    } finally {
      await gw.stop()
    }
  })

  test('rule filters apply to the handshake: header modifier and path rewrite', async () => {
    const r = rule({
      match: { path: { type: 'PathPrefix', value: '/api' } },
      filters: [
        { type: 'RequestHeaderModifier', set: [['x-tenant', 'blue']], add: [], remove: ['x-secret'] },
        { type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/echo' } },
        { type: 'ResponseHeaderModifier', set: [['x-gateway', 'portico']], add: [], remove: [] },
      ],
    })
    const gw = await startDataplane(simple(0, [r], [pool('p1', [b1.port])]))
    try {
      const before = b1.handshakes.length
      const head = await rawUpgrade(gw.port, '/api/room', 'X-Secret: s3cr3t\r\n')
      expect(head).toStartWith('HTTP/1.1 101')
      expect(head.toLowerCase()).toContain('x-gateway: portico')
      expect(head.toLowerCase()).toContain('sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=')
      const handshake = b1.handshakes[before]!
      expect(handshake.path).toBe('/echo/room')
      expect(handshake.headers['x-tenant']).toBe('blue')
      expect(handshake.headers['x-secret']).toBeUndefined()
    } finally {
      await gw.stop()
    }
  })

  test('pings and pongs cross the bridge both ways, one pong per ping', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    try {
      const client = await TestClient.connect(wsUrl(gw.port, '/echo'))
      const session = b1.sessions[b1.sessions.length - 1]!
      client.ws.ping('from-client')
      await client.until(() => client.pongs.includes('from-client') && session.pings.includes('from-client'))
      // Backend → client: the client's automatic pong reaches the backend.
      client.ws.send('ping-me')
      await client.until(() => client.pings.includes('from-backend') && session.pongs.includes('from-backend'))
      // A round trip more, so a duplicate pong would have arrived by now.
      client.ws.send('sync')
      expect(await client.next()).toBe('sync')
      expect(client.pongs.filter((p) => p === 'from-client')).toHaveLength(1)
      client.ws.close(1000)
      await client.closed
    } finally {
      await gw.stop()
    }
  })
})

describe('close codes', () => {
  test('a backend close code and reason reach the client', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    try {
      const client = await TestClient.connect(wsUrl(gw.port, '/echo'))
      client.ws.send('close:4001:backend-bye')
      expect(await client.closed).toEqual({ code: 4001, reason: 'backend-bye' })
    } finally {
      await gw.stop()
    }
  })

  test('a client close code and reason reach the backend', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    try {
      const client = await TestClient.connect(wsUrl(gw.port, '/echo'))
      const closed = b1.nextClose()
      client.ws.close(4002, 'client-bye')
      expect(await closed).toEqual({ code: 4002, reason: 'client-bye' })
    } finally {
      await gw.stop()
    }
  })

  test('stopping the gateway closes both sides with 1001', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    const client = await TestClient.connect(wsUrl(gw.port, '/echo'))
    const backendClosed = b1.nextClose()
    await gw.dp.stop(false, 5_000)
    expect((await client.closed).code).toBe(1001)
    expect((await backendClosed).code).toBe(1001)
  })
})

describe('refused upgrades never get a 101', () => {
  test("the backend's own 4xx is relayed", async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    try {
      expect(await rawUpgrade(gw.port, '/refuse/403')).toStartWith('HTTP/1.1 403')
      await expect(TestClient.connect(wsUrl(gw.port, '/refuse/403'))).rejects.toThrow()
    } finally {
      await gw.stop()
    }
  })

  test('a backend answering 200 instead of 101 → 502', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [b1.port])]))
    try {
      expect(await rawUpgrade(gw.port, '/refuse/200')).toStartWith('HTTP/1.1 502')
    } finally {
      await gw.stop()
    }
  })

  test('a backend that is down → 502', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [await closedPort()])]))
    try {
      expect(await rawUpgrade(gw.port, '/echo')).toStartWith('HTTP/1.1 502')
    } finally {
      await gw.stop()
    }
  })
})

describe('long-lived sessions', () => {
  test('a session keeps the route it started with across a snapshot swap', async () => {
    const r = rule({ id: 'httproute/test/ws/rule/0/match/0' })
    const gw = await startDataplane(simple(0, [r], [pool('p1', [b1.port]), pool('p2', [b2.port])]))
    try {
      const client = await TestClient.connect(wsUrl(gw.port, '/echo'))
      const session = b1.sessions[b1.sessions.length - 1]!
      // Same route id, new sessions now going to another backend (the old one kept at weight 0:
      // removing it from the route would close its sessions, see test/front/ws-route-removal);
      // plus an unrelated rule.
      const swapped = simple(0, [{ ...r, action: { kind: 'forward', backends: [backend('p1', 0), backend('p2')] } }, rule({ match: { path: { type: 'Exact', value: '/other' } } })], [pool('p1', [b1.port]), pool('p2', [b2.port])], 2)
      const applied = await gw.dp.apply(swapped)
      expect(applied.problems).toEqual([])
      client.ws.send('after-swap')
      expect(await client.next()).toBe('after-swap')
      expect(session.received).toBe('after-swap'.length)
      // New sessions follow the new plan.
      const fresh = await TestClient.connect(wsUrl(gw.port, '/echo'))
      fresh.ws.send('fresh')
      expect(await fresh.next()).toBe('fresh')
      expect(b2.sessions.length).toBeGreaterThan(0)
      client.ws.close(1000)
      fresh.ws.close(1000)
      await Promise.all([client.closed, fresh.closed])
    } finally {
      await gw.stop()
    }
  })

  test('the route stream idle timeout closes a silent session (1001), not a chatty one', async () => {
    const gw = await startDataplane(simple(0, [rule({ streamIdleTimeoutMs: 400 })], [pool('p1', [b1.port])]))
    try {
      const silent = await TestClient.connect(wsUrl(gw.port, '/echo'))
      const chatty = await TestClient.connect(wsUrl(gw.port, '/echo'))
      // Chatty sends every 100 ms for 4× the idle timeout.
      for (let i = 0; i < 16; i++) {
        chatty.ws.send(`tick ${i}`)
        expect(await chatty.next()).toBe(`tick ${i}`)
        await Bun.sleep(100)
      }
      expect(await silent.closed).toEqual({ code: 1001, reason: 'stream idle timeout' })
      expect(chatty.ws.readyState).toBe(WebSocket.OPEN)
      chatty.ws.close(1000)
      await chatty.closed
    } finally {
      await gw.stop()
    }
  })
})
