/**
 * Open L4 connections across configuration changes: a TCP/TLS connection or UDP session keeps its
 * route and endpoint through every change that leaves both in place, and ends cleanly (TCP: what
 * is queued is written, then FIN both ways; UDP: the session is dropped) when the change removes
 * its route from the port or its endpoint from the route.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, type Server, type Socket } from 'node:net'
import * as tls from 'node:tls'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { Splice, type StreamSocket } from '../../src/dataplane/l4/splice.ts'
import type { BackendPool, L4Port } from '../../src/ir/types.ts'
import { backend, pool, recordingLogger, route, snapshot, tcpPort, tlsPort, udpPort } from './support/snapshot.ts'
import { freePort, makeCertificate, startUdpEcho, TcpClient, type Backend, type Certificate } from './support/servers.ts'

/** What a TCP backend saw of one connection. */
interface BackendConnection {
  /** The gateway sent FIN (rather than a reset or nothing). */
  gotFin: boolean
  error?: string
  closed: boolean
}

interface RecordingBackend {
  readonly name: string
  readonly port: number
  readonly connections: BackendConnection[]
  stop(): Promise<void>
}

/** Says "hello from <name>\n", echoes, records how each connection ended; answers a FIN with its own. */
async function startRecordingEcho(name: string): Promise<RecordingBackend> {
  const connections: BackendConnection[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const seen: BackendConnection = { gotFin: false, closed: false }
    connections.push(seen)
    sockets.add(socket)
    socket.on('end', () => (seen.gotFin = true))
    socket.on('error', (error) => (seen.error = error.message))
    socket.on('close', () => {
      seen.closed = true
      sockets.delete(socket)
    })
    socket.write(`hello from ${name}\n`)
    socket.pipe(socket)
  })
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)))
  return {
    name,
    port,
    connections,
    stop: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

/** A TcpClient that also records whether the gateway ended it with a FIN or a reset. */
function tcpClient(port: number): TcpClient & { fin: () => boolean; error: () => string | undefined } {
  const client = TcpClient.connect(port)
  let fin = false
  let error: string | undefined
  client.socket.on('end', () => (fin = true))
  client.socket.on('error', (e) => (error = e.message))
  return Object.assign(client, { fin: () => fin, error: () => error })
}

let alpha: RecordingBackend
let beta: RecordingBackend
let dataplane: L4Dataplane

beforeAll(async () => {
  alpha = await startRecordingEcho('alpha')
  beta = await startRecordingEcho('beta')
})

afterAll(async () => {
  await alpha.stop()
  await beta.stop()
})

afterEach(async () => {
  await dataplane?.stop()
})

function gateway(): L4Dataplane {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1' })
  return dataplane
}

async function apply(l4: L4Port[], pools: BackendPool[]): Promise<void> {
  expect((await dataplane.apply(snapshot(l4, pools))).problems).toEqual([])
}

describe('TCPRoute', () => {
  const pools = () => [pool('test/alpha:3000', [alpha.port]), pool('test/beta:3000', [beta.port])]

  test('a connection survives unrelated changes; removing its route ends both sides with a FIN', async () => {
    gateway()
    const [port, other] = [await freePort(), await freePort()]
    const r = route('r', [backend('test/alpha:3000')])
    await apply([tcpPort(port, [r]), tcpPort(other, [route('o', [backend('test/beta:3000')])])], pools())
    const client = tcpClient(port)
    await client.waitFor('hello from alpha\n')
    const onBackend = alpha.connections[alpha.connections.length - 1]!

    // Its weight changes, a newer route joins (and takes the lead), the other port goes, a UDP port comes.
    const changes: L4Port[][] = [
      [tcpPort(port, [route('r', [backend('test/alpha:3000', 3), backend('test/beta:3000', 1)])]), tcpPort(other, [route('o', [backend('test/beta:3000')])])],
      [tcpPort(port, [route('n', [backend('test/beta:3000')]), r])],
      [tcpPort(port, [r]), udpPort(other, [route('u', [backend('test/beta:3000')])])],
    ]
    for (const [i, l4] of changes.entries()) {
      await apply(l4, pools())
      client.write(`after change ${i}\n`)
      await client.waitFor(`after change ${i}\n`)
    }
    expect(onBackend.gotFin).toBe(false)

    // Its route leaves the port (another one stays): both ends get a FIN, not a reset.
    await apply([tcpPort(port, [route('n', [backend('test/beta:3000')])])], pools())
    expect(await client.closesWithin(2_000)).toBe(true)
    expect(client.fin()).toBe(true)
    expect(client.error()).toBeUndefined()
    await until(() => onBackend.gotFin)
    expect(onBackend.error).toBeUndefined()
    client.destroy()
    await until(() => dataplane.stats().tcpConnections === 0)
    // The port itself is still served, by the route that stayed.
    const fresh = tcpClient(port)
    await fresh.waitFor('hello from beta\n')
    fresh.destroy()
  })

  test("a connection whose endpoint leaves the EndpointSlice ends; one on a remaining endpoint stays", async () => {
    gateway()
    const port = await freePort()
    const r = route('svc', [backend('test/svc:3000')])
    await apply([tcpPort(port, [r])], [pool('test/svc:3000', [alpha.port, beta.port])])
    // Round robin: one connection on each endpoint.
    const first = tcpClient(port)
    await first.waitFor('\n')
    const second = tcpClient(port)
    await second.waitFor('\n')
    const onAlpha = first.received.startsWith('hello from alpha') ? first : second
    const onBeta = onAlpha === first ? second : first
    expect(onBeta.received).toStartWith('hello from beta')
    const alphaSide = alpha.connections[alpha.connections.length - 1]!

    // Endpoints change but both stay (a third one joins): nothing closes.
    const spare = await freePort()
    await apply([tcpPort(port, [r])], [pool('test/svc:3000', [alpha.port, beta.port, spare])])
    onAlpha.write('still alpha\n')
    await onAlpha.waitFor('still alpha\n')

    await apply([tcpPort(port, [r])], [pool('test/svc:3000', [beta.port])])
    expect(await onAlpha.closesWithin(2_000)).toBe(true)
    expect(onAlpha.fin()).toBe(true)
    await until(() => alphaSide.gotFin)
    onBeta.write('still beta\n')
    await onBeta.waitFor('still beta\n')
    expect(await onBeta.closesWithin(50)).toBe(false)
    first.destroy()
    second.destroy()
  })

  test('removing the port ends its connections too', async () => {
    gateway()
    const port = await freePort()
    await apply([tcpPort(port, [route('r', [backend('test/alpha:3000')])])], pools())
    const client = tcpClient(port)
    await client.waitFor('hello from alpha\n')
    await apply([], pools())
    expect(await client.closesWithin(2_000)).toBe(true)
    expect(client.fin()).toBe(true)
    client.destroy()
  })
})

describe('Splice.drainAndFinish', () => {
  /** A socket that takes at most `accept` bytes per write until opened up. */
  function fakeSocket(accept: number) {
    const log: string[] = []
    const socket = {
      accept,
      written: 0,
      write(data: Uint8Array) {
        const n = Math.min(data.length, socket.accept)
        socket.accept -= n
        socket.written += n
        return n
      },
      pause: () => log.push('pause'),
      resume: () => log.push('resume'),
      shutdown: () => log.push('shutdown'),
      end: () => log.push('end'),
    }
    return { socket: socket satisfies StreamSocket, log }
  }

  test('writes what is queued, then sends the FIN; finishes once both peers answered with theirs', () => {
    let finished = false
    const splice = new Splice(() => (finished = true))
    const client = fakeSocket(10)
    const backendSocket = fakeSocket(1_000)
    splice.client.socket = client.socket
    splice.backend.socket = backendSocket.socket
    // 30 bytes from the backend; the client takes 10, 20 wait and the backend is paused.
    splice.relay(splice.backend, new Uint8Array(30))
    expect(splice.client.outbox.bytes).toBe(20)
    expect(backendSocket.log).toEqual(['pause'])

    splice.drainAndFinish()
    // The backend gets its FIN at once (nothing queued for it) and is read again (to drop what comes).
    expect(backendSocket.log).toEqual(['pause', 'resume', 'shutdown'])
    // The client gets no FIN while 20 bytes are still queued for it; new bytes are not relayed.
    expect(client.log).toEqual([])
    splice.relay(splice.backend, new Uint8Array(5))
    expect(splice.client.outbox.bytes).toBe(20)

    client.socket.accept = 1_000
    splice.writable(splice.client)
    expect(client.socket.written).toBe(30)
    expect(client.log).toEqual(['shutdown'])
    expect(finished).toBe(false)

    splice.ended(splice.client)
    splice.ended(splice.backend)
    expect(finished).toBe(true)
    expect(client.log).toEqual(['shutdown', 'end'])
  })
})

describe('TLSRoute', () => {
  let cert: Certificate
  beforeAll(() => {
    cert = makeCertificate(['keep.test', 'drop.test'])
  })

  /** TLS client through the gateway that records its received text and how it ended. */
  async function tlsClient(port: number, servername: string) {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: cert.certPem })
    const state = { received: '', fin: false, closed: false, error: undefined as string | undefined }
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => (state.received += text))
    socket.on('end', () => (state.fin = true))
    socket.on('close', () => (state.closed = true))
    socket.on('error', (error) => (state.error = error.message))
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve())
      socket.once('error', reject)
    })
    return { socket, state }
  }

  test('terminate: a connection survives an unrelated change; removing its route ends it with a FIN', async () => {
    gateway()
    const port = await freePort()
    const terminate = { certificates: [cert] }
    const keep = route('keep', [backend('test/alpha:3000')], { hostnames: ['keep.test'], terminate })
    const drop = route('drop', [backend('test/alpha:3000')], { hostnames: ['drop.test'], terminate })
    const pools = [pool('test/alpha:3000', [alpha.port])]
    await apply([tlsPort(port, [keep, drop])], pools)
    const kept = await tlsClient(port, 'keep.test')
    const dropped = await tlsClient(port, 'drop.test')
    await until(() => kept.state.received.includes('hello from alpha\n') && dropped.state.received.includes('hello from alpha\n'))
    const droppedSide = alpha.connections[alpha.connections.length - 1]!

    // An unrelated change: another route joins.
    await apply([tlsPort(port, [keep, drop, route('more', [backend('test/alpha:3000')], { hostnames: ['more.test'], terminate })])], pools)
    dropped.socket.write('still here\n')
    await until(() => dropped.state.received.includes('still here\n'))

    await apply([tlsPort(port, [keep])], pools)
    await until(() => dropped.state.fin)
    expect(dropped.state.error).toBeUndefined()
    await until(() => droppedSide.gotFin)
    kept.socket.write('kept\n')
    await until(() => kept.state.received.includes('kept\n'))
    expect(kept.state.fin).toBe(false)
    kept.socket.destroy()
    dropped.socket.destroy()
  })

  test('passthrough: removing the route ends the connection; the other route\'s stays', async () => {
    const tlsBackend = await new Promise<{ port: number; server: tls.Server }>((resolve) => {
      const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, allowHalfOpen: true }, (socket) => {
        socket.on('error', () => {})
        socket.write(`hello sni=${socket.servername}\n`)
        socket.pipe(socket)
      })
      server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, server }))
    })
    try {
      gateway()
      const port = await freePort()
      const keep = route('keep', [backend('test/tls:443')], { hostnames: ['keep.test'] })
      const drop = route('drop', [backend('test/tls:443')], { hostnames: ['drop.test'] })
      const pools = [pool('test/tls:443', [tlsBackend.port])]
      await apply([tlsPort(port, [keep, drop])], pools)
      const kept = await tlsClient(port, 'keep.test')
      const dropped = await tlsClient(port, 'drop.test')
      await until(() => kept.state.received.includes('sni=keep.test') && dropped.state.received.includes('sni=drop.test'))

      await apply([tlsPort(port, [keep])], pools)
      // A TCP FIN from the gateway (the backend's TLS session never sent close_notify), no reset.
      await until(() => dropped.state.fin)
      expect(dropped.state.error).toBeUndefined()
      kept.socket.write('kept\n')
      await until(() => kept.state.received.includes('kept\n'))
      kept.socket.destroy()
      dropped.socket.destroy()
    } finally {
      await new Promise((resolve) => tlsBackend.server.close(resolve))
    }
  })
})

describe('UDPRoute', () => {
  let one: Backend
  let two: Backend
  beforeAll(async () => {
    one = await startUdpEcho('one')
    two = await startUdpEcho('two')
  })
  afterAll(async () => {
    await one.stop()
    await two.stop()
  })

  const udpPools = () => [
    pool('test/one:53', [one.port], 'udp'),
    pool('test/two:53', [two.port], 'udp'),
    pool('test/both:53', [one.port, two.port], 'udp'),
  ]

  /** A UDP client bound to its own port: sends text, collects which backend answered. */
  async function udpClient(port: number) {
    const socket: UdpSocket = createSocket('udp4')
    const answeredBy: string[] = []
    socket.on('message', (message) => answeredBy.push((JSON.parse(message.toString()) as { backend: string }).backend))
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
    return {
      answeredBy,
      /** Sends one datagram and waits for its answer; returns the backend that answered. */
      async ask(): Promise<string> {
        const before = answeredBy.length
        socket.send('q', port, '127.0.0.1')
        await until(() => answeredBy.length > before)
        return answeredBy[answeredBy.length - 1]!
      },
      close: () => socket.close(),
    }
  }

  test('a session survives unrelated changes and is dropped when its route is removed', async () => {
    gateway()
    const [port, other] = [await freePort(), await freePort()]
    const r = route('dns', [backend('test/one:53')])
    await apply([udpPort(port, [r])], udpPools())
    const client = await udpClient(port)
    expect(await client.ask()).toBe('one')

    // A newer route takes the lead, weights change (another backend joins), another port comes.
    const changes: L4Port[][] = [
      [udpPort(port, [route('lead', [backend('test/two:53')]), r])],
      [udpPort(port, [route('dns', [backend('test/one:53', 1), backend('test/two:53', 5)])]), udpPort(other, [route('o', [backend('test/two:53')])])],
    ]
    for (const l4 of changes) {
      await apply(l4, udpPools())
      expect(await client.ask()).toBe('one')
      expect(dataplane.stats().udpSessions).toBe(1)
    }

    await apply([udpPort(port, [route('lead', [backend('test/two:53')])])], udpPools())
    expect(dataplane.stats().udpSessions).toBe(0)
    // The client's next datagram starts a session on the route that is left.
    expect(await client.ask()).toBe('two')
    client.close()
  })

  test("a session whose endpoint leaves the EndpointSlice is dropped; one on a remaining endpoint stays", async () => {
    gateway()
    const port = await freePort()
    const r = route('dns', [backend('test/both:53')])
    await apply([udpPort(port, [r])], udpPools())
    const a = await udpClient(port)
    const b = await udpClient(port)
    const answers = [await a.ask(), await b.ask()].sort()
    expect(answers).toEqual(['one', 'two'])
    const onOne = a.answeredBy[0] === 'one' ? a : b
    const onTwo = onOne === a ? b : a

    await apply([udpPort(port, [r])], [pool('test/both:53', [two.port], 'udp')])
    expect(dataplane.stats().udpSessions).toBe(1)
    expect(await onTwo.ask()).toBe('two')
    expect(await onOne.ask()).toBe('two')
    expect(dataplane.stats().udpSessions).toBe(2)
    a.close()
    b.close()
  })
})
