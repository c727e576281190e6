/**
 * Direct WebSocket tunnels of the HTTP front across configuration changes: a session keeps its
 * backend through changes that leave its route and endpoint in place, and is closed with 1012
 * on both sides when its route or its endpoint is removed.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startDataplane } from '../dataplane/harness.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { startWsBackend, type WsBackend } from '../websocket/support/ws-backend.ts'
import { TestClient } from '../websocket/support/client.ts'

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

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })

test('an unrelated change keeps the session; removing its route closes it with 1012 on both sides', async () => {
  const chat = rule({ match: prefix('/chat') })
  const other = rule({ match: prefix('/other') })
  const gw = await startDataplane(simple(0, [chat, other], [pool('p1', [b1.port])], 1))
  try {
    const client = await TestClient.connect(`ws://127.0.0.1:${gw.port}/chat`)
    client.ws.send('one')
    expect(await client.next()).toBe('one')
    const backendClosed = b1.nextClose()

    // Another rule goes away: the chat session is untouched.
    await gw.dp.apply(simple(0, [chat], [pool('p1', [b1.port])], 2))
    client.ws.send('two')
    expect(await client.next()).toBe('two')

    // Its own rule goes away: both ends hear 1012.
    await gw.dp.apply(simple(0, [other], [pool('p1', [b1.port])], 3))
    expect(await client.closed).toEqual({ code: 1012, reason: 'route removed' })
    expect(await backendClosed).toEqual({ code: 1012, reason: 'route removed' })
  } finally {
    await gw.stop()
  }
})

test('a session whose backend endpoint leaves the pool is closed with 1012; one on a remaining endpoint stays', async () => {
  const chat = rule({ match: prefix('/') })
  const gw = await startDataplane(simple(0, [chat], [pool('p1', [b1.port, b2.port])], 1))
  try {
    // Round robin: two sessions land on the two endpoints.
    const b1Before = b1.sessions.length
    const first = await TestClient.connect(`ws://127.0.0.1:${gw.port}/a`)
    const second = await TestClient.connect(`ws://127.0.0.1:${gw.port}/b`)
    // The backend registers a session when its open handler runs, which may trail the client's open.
    for (let i = 0; i < 100 && b1.sessions.length - b1Before + b2.sessions.length < 2; i++) await Bun.sleep(5)
    expect(b2.sessions.length).toBe(1)
    const onB2 = b2.sessions[0]!.path === '/b' ? second : first
    const onB1 = onB2 === first ? second : first

    await gw.dp.apply(simple(0, [chat], [pool('p1', [b1.port])], 2))
    expect(await onB2.closed).toEqual({ code: 1012, reason: 'route removed' })
    onB1.ws.send('still here')
    expect(await onB1.next()).toBe('still here')
    onB1.ws.close()
  } finally {
    await gw.stop()
  }
})
