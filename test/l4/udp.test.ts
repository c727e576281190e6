import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { createSocket, type Socket } from 'node:dgram'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, pool, recordingLogger, route, snapshot, udpPort } from './support/snapshot.ts'
import { freePort, startUdpEcho, type Backend } from './support/servers.ts'

let one: Backend
let two: Backend
let dataplane: L4Dataplane

beforeAll(async () => {
  one = await startUdpEcho('one')
  two = await startUdpEcho('two')
})

afterAll(async () => {
  await one.stop()
  await two.stop()
})

afterEach(async () => {
  await dataplane?.stop()
})

interface Reply {
  backend: string
  echo: string
}

/** A UDP client bound to its own port, collecting JSON replies. */
async function udpClient(): Promise<{ socket: Socket; replies: Reply[]; send(text: string, port: number): void; close(): void }> {
  const socket = createSocket('udp4')
  const replies: Reply[] = []
  socket.on('message', (message) => replies.push(JSON.parse(message.toString()) as Reply))
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  return {
    socket,
    replies,
    send: (text, port) => socket.send(text, port, '127.0.0.1'),
    close: () => socket.close(),
  }
}

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

async function udpGateway(routes: ReturnType<typeof route>[], udp = {}) {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1', udp })
  const port = await freePort()
  const { problems } = await dataplane.apply(
    snapshot([udpPort(port, routes)], [pool('test/one:53', [one.port], 'udp'), pool('test/two:53', [two.port], 'udp')]),
  )
  expect(problems).toEqual([])
  return port
}

describe('UDPRoute', () => {
  test('several clients each get their own replies', async () => {
    const port = await udpGateway([route('dns', [backend('test/one:53')])])
    const clients = await Promise.all([udpClient(), udpClient(), udpClient(), udpClient()])
    for (let round = 0; round < 20; round++) {
      clients.forEach((client, index) => client.send(`client-${index}-msg-${round}`, port))
      await Bun.sleep(1)
    }
    await until(() => clients.every((client) => client.replies.length >= 20))
    clients.forEach((client, index) => {
      expect(client.replies).toHaveLength(20)
      for (const reply of client.replies) {
        expect(reply.backend).toBe('one')
        expect(reply.echo.startsWith(`client-${index}-`)).toBe(true)
      }
    })
    expect(dataplane.stats().udpSessions).toBe(4)
    for (const client of clients) client.close()
  })

  test('200 concurrent clients each get exactly their own replies', async () => {
    const port = await udpGateway([route('many', [backend('test/one:53'), backend('test/two:53')])])
    const clients = await Promise.all(Array.from({ length: 200 }, () => udpClient()))
    // Five rounds of everyone at once: the first creates 200 sessions while datagrams for others
    // are in flight. One round at a time, because a burst much past 200 small datagrams overruns a
    // socket's default receive buffer (212 KiB, ~830 B of kernel accounting per datagram) and the
    // kernel drops the rest: that is UDP, not the gateway.
    for (let round = 0; round < 5; round++) {
      clients.forEach((client, index) => client.send(`c${index}-r${round}`, port))
      await until(() => clients.every((client) => client.replies.length > round))
    }
    clients.forEach((client, index) => {
      expect(client.replies.map((reply) => reply.echo).sort()).toEqual([0, 1, 2, 3, 4].map((round) => `c${index}-r${round}`))
      // A session keeps the backend it started with.
      expect(new Set(client.replies.map((reply) => reply.backend)).size).toBe(1)
    })
    expect(dataplane.stats().udpSessions).toBe(200)
    expect(dataplane.stats().udpDropped).toBe(0)
    for (const client of clients) client.close()
  })

  test('a session keeps its backend; weights spread new sessions', async () => {
    const port = await udpGateway([route('split', [backend('test/one:53', 1), backend('test/two:53', 1)])])
    const clients = await Promise.all([udpClient(), udpClient(), udpClient(), udpClient()])
    for (let round = 0; round < 5; round++) {
      for (const client of clients) client.send(`r${round}`, port)
      await until(() => clients.every((client) => client.replies.length > round))
    }
    const perClient = clients.map((client) => new Set(client.replies.map((reply) => reply.backend)))
    for (const backends of perClient) expect(backends.size).toBe(1)
    expect(perClient.map((backends) => [...backends][0]).sort()).toEqual(['one', 'one', 'two', 'two'])
    for (const client of clients) client.close()
  })

  test('only the first route on the port receives datagrams', async () => {
    const port = await udpGateway([route('older', [backend('test/one:53')]), route('newer', [backend('test/two:53')])])
    const client = await udpClient()
    for (let i = 0; i < 5; i++) client.send(`m${i}`, port)
    await until(() => client.replies.length === 5)
    expect(new Set(client.replies.map((reply) => reply.backend))).toEqual(new Set(['one']))
    client.close()
  })

  test('idle sessions expire and the table stays bounded', async () => {
    const port = await udpGateway([route('dns', [backend('test/one:53')])], { idleTimeoutMs: 150, maxSessions: 3 })
    const clients = await Promise.all([udpClient(), udpClient(), udpClient(), udpClient(), udpClient()])
    for (const client of clients) {
      client.send('hi', port)
      await until(() => client.replies.length === 1)
    }
    expect(dataplane.stats().udpSessions).toBe(3)
    await until(() => dataplane.stats().udpSessions === 0, 2_000)
    // An expired client simply gets a new session.
    clients[0]!.send('again', port)
    await until(() => clients[0]!.replies.length === 2)
    for (const client of clients) client.close()
  })

  test('a snapshot that moves the port to another route re-homes sessions', async () => {
    const port = await udpGateway([route('first', [backend('test/one:53')])])
    const client = await udpClient()
    client.send('before', port)
    await until(() => client.replies.length === 1)
    await dataplane.apply(
      snapshot([udpPort(port, [route('second', [backend('test/two:53')])])], [pool('test/two:53', [two.port], 'udp')]),
    )
    client.send('after', port)
    await until(() => client.replies.length === 2)
    expect(client.replies.map((reply) => reply.backend)).toEqual(['one', 'two'])
    client.close()
  })
})
