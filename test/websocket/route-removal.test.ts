/**
 * WebSocket sessions of the full pipeline (routes with filters, bridged by WebSocketProxy behind
 * the inner Bun.serve) across configuration changes: a session keeps its backend through changes
 * that leave its rule and endpoint in place, and is closed with 1012 "route removed" on both
 * sides when its rule leaves the port or its endpoint leaves the rule's pools.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { startDataplane } from '../dataplane/harness.ts'
import { backend, forwardTo, pool, rule, simple } from '../dataplane/ir.ts'
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

const removed = { code: 1012, reason: 'route removed' }
const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
/** A filter keeps the rule off the front's direct tunnel: the session goes through WebSocketProxy. */
const filtered = (partial: Parameters<typeof rule>[0]) =>
  rule({ filters: [{ type: 'RequestHeaderModifier', set: [['x-via', 'pipeline']], add: [], remove: [] }], ...partial })

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

test('a session on a filtered route survives unrelated changes; removing its route closes both sides with 1012', async () => {
  const chat = filtered({ match: prefix('/echo') })
  const other = filtered({ match: prefix('/other') })
  const pools = [pool('p1', [b1.port]), pool('p2', [b2.port])]
  const gw = await startDataplane(simple(0, [chat, other], pools, 1))
  try {
    const client = await TestClient.connect(`ws://127.0.0.1:${gw.port}/echo`)
    expect(gw.dp.websockets.size).toBe(1)
    expect(b1.handshakes[b1.handshakes.length - 1]!.headers['x-via']).toBe('pipeline')
    const backendClosed = b1.nextClose()

    const changes = [
      // Another rule goes away.
      simple(0, [chat], pools, 2),
      // Its own rule: new sessions go to p2, p1 stays at weight 0 (drained, not cut); a rule joins.
      simple(0, [{ ...chat, action: { kind: 'forward', backends: [backend('p1', 0), backend('p2')] } }, other], pools, 3),
      // Its pool gains an endpoint.
      simple(0, [chat, other], [pool('p1', [b1.port, b2.port]), pool('p2', [b2.port])], 4),
    ]
    for (const [i, snapshot] of changes.entries()) {
      expect((await gw.dp.apply(snapshot)).problems).toEqual([])
      client.ws.send(`after change ${i}`)
      expect(await client.next()).toBe(`after change ${i}`)
    }
    expect(gw.dp.websockets.size).toBe(1)

    // Its rule leaves the port: client and backend both hear 1012.
    expect((await gw.dp.apply(simple(0, [other], pools, 5))).problems).toEqual([])
    expect(await client.closed).toEqual(removed)
    expect(await backendClosed).toEqual(removed)
    expect(gw.dp.websockets.size).toBe(0)
  } finally {
    await gw.stop()
  }
})

test('a session whose endpoint leaves the pool gets 1012; one on a remaining endpoint stays', async () => {
  const chat = filtered({ match: prefix('/') })
  const gw = await startDataplane(simple(0, [chat], [pool('p1', [b1.port, b2.port])], 1))
  try {
    // Round robin: one session on each endpoint.
    const first = await TestClient.connect(`ws://127.0.0.1:${gw.port}/echo?n=1`)
    const second = await TestClient.connect(`ws://127.0.0.1:${gw.port}/echo?n=2`)
    await until(() => b1.sessions.some((s) => s.path.includes('n=')) && b2.sessions.some((s) => s.path.includes('n=')))
    const onB2 = b2.sessions.some((s) => s.path === '/echo?n=2') ? second : first
    const onB1 = onB2 === first ? second : first
    const b2Closed = b2.nextClose()

    expect((await gw.dp.apply(simple(0, [chat], [pool('p1', [b1.port])], 2))).problems).toEqual([])
    expect(await onB2.closed).toEqual(removed)
    expect(await b2Closed).toEqual(removed)
    onB1.ws.send('still here')
    expect(await onB1.next()).toBe('still here')
    onB1.ws.close(1000)
    await onB1.closed
  } finally {
    await gw.stop()
  }
})

test('a route removed while the backend handshake is in flight: the client gets its 101, then 1012', async () => {
  // A backend that takes 300 ms to accept, so the swap lands mid-handshake.
  let backendClose: { code: number; reason: string } | undefined
  const slow: Server<undefined> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req, srv) {
      await Bun.sleep(300)
      return srv.upgrade(req) ? undefined : new Response('upgrade required', { status: 426 })
    },
    websocket: {
      message() {},
      close(_ws, code, reason) {
        backendClose = { code, reason }
      },
    },
  })
  const chat = filtered({ match: prefix('/slow'), action: forwardTo('slow') })
  const other = filtered({ match: prefix('/other'), action: forwardTo('slow') })
  const pools = [pool('slow', [slow.port!])]
  const gw = await startDataplane(simple(0, [chat, other], pools, 1))
  try {
    const connecting = TestClient.connect(`ws://127.0.0.1:${gw.port}/slow`)
    await Bun.sleep(100)
    expect((await gw.dp.apply(simple(0, [other], pools, 2))).problems).toEqual([])
    const client = await connecting
    expect(await client.closed).toEqual(removed)
    await until(() => backendClose !== undefined)
    expect(backendClose).toEqual(removed)
    expect(gw.dp.websockets.size).toBe(0)
  } finally {
    await gw.stop()
    slow.stop(true)
  }
})
