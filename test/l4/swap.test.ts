import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { createServer } from 'node:net'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, pool, recordingLogger, route, snapshot, tcpPort, tlsPort, udpPort } from './support/snapshot.ts'
import { freePort, greeting, makeCertificate, readUntil, startTcpEcho, TcpClient, tlsConnect, type Backend } from './support/servers.ts'

let alpha: Backend
let beta: Backend
let dataplane: L4Dataplane

const pools = () => [pool('test/alpha:3000', [alpha.port]), pool('test/beta:3000', [beta.port])]

beforeAll(async () => {
  alpha = await startTcpEcho('alpha')
  beta = await startTcpEcho('beta')
})

afterAll(async () => {
  await alpha.stop()
  await beta.stop()
})

afterEach(async () => {
  await dataplane?.stop()
})

function newDataplane(): L4Dataplane {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1' })
  return dataplane
}

describe('snapshot swap', () => {
  test('new connections follow the new route while an open one keeps its old backend (drained at weight 0)', async () => {
    const gateway = newDataplane()
    const port = await freePort()
    await gateway.apply(snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])])], pools()))
    const old = TcpClient.connect(port)
    await old.waitFor('hello from alpha\n')

    const listenersBefore = gateway.listening()
    // alpha stays in the route at weight 0: no new connections, open ones keep running (removing
    // it from the route would close them, see route-removal.test.ts).
    const { problems } = await gateway.apply(
      snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000', 0), backend('test/beta:3000')])])], pools()),
    )
    expect(problems).toEqual([])
    expect(gateway.listening()).toEqual(listenersBefore)

    expect(await greeting(port)).toBe('hello from beta')
    old.write('still here\n')
    await old.waitFor('still here\n')
    expect(old.received).toBe('hello from alpha\nstill here\n')
    old.destroy()
  })

  test('a long TCP stream stays byte-exact through 20 config changes', async () => {
    const gateway = newDataplane()
    const [port, other] = [await freePort(), await freePort()]
    const variants = [
      // Everything but the stream's own route and backend changes: its backend drained to weight 0,
      // weights, another route taking the lead, other ports coming and going.
      () => [tcpPort(port, [route('r', [backend('test/alpha:3000', 0), backend('test/beta:3000')])])],
      () => [tcpPort(port, [route('r', [backend('test/alpha:3000', 1), backend('test/beta:3000', 3)])]), tcpPort(other, [route('o', [backend('test/beta:3000')])])],
      () => [tcpPort(port, [route('newer', [backend('test/beta:3000')]), route('r', [backend('test/alpha:3000')])]), udpPort(other, [route('u', [backend('test/alpha:3000')])])],
      () => [tcpPort(port, [route('r', [backend('test/alpha:3000')])])],
    ]
    await gateway.apply(snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])])], pools()))
    const client = TcpClient.connect(port)
    await client.waitFor('hello from alpha\n')
    const received: Buffer[] = []
    client.socket.removeAllListeners('data')
    client.socket.setEncoding('binary')
    client.socket.on('data', (text: string) => received.push(Buffer.from(text, 'binary')))

    // Writes a counting pattern as fast as the path takes it (respecting backpressure) until told to stop.
    let sent = 0
    let pumping = true
    const sentHash = new Bun.CryptoHasher('sha256')
    const pump = (async () => {
      while (pumping) {
        const chunk = Buffer.alloc(16_384, sent & 0xff)
        chunk.writeUInt32BE(sent >>> 0, 0)
        sentHash.update(chunk)
        sent += chunk.length
        if (!client.socket.write(chunk)) await new Promise((resolve) => client.socket.once('drain', resolve))
      }
    })()
    for (let i = 0; i < 20; i++) {
      expect((await gateway.apply(snapshot(variants[i % variants.length]!(), pools()))).problems).toEqual([])
      await Bun.sleep(5)
    }
    pumping = false
    await pump
    const deadline = Date.now() + 5_000
    const bytes = () => received.reduce((total, chunk) => total + chunk.length, 0)
    while (bytes() < sent && Date.now() < deadline) await Bun.sleep(5)
    expect(sent).toBeGreaterThan(1_000_000)
    expect(bytes()).toBe(sent)
    expect(new Bun.CryptoHasher('sha256').update(Buffer.concat(received)).digest('hex')).toBe(sentHash.digest('hex'))
    expect(client.socket.destroyed).toBe(false)
    // New connections follow the last config (alpha); the stream never moved.
    expect(await greeting(port)).toBe('hello from alpha')
    client.destroy()
  })

  test('removing a port stops accepting and ends its open connections', async () => {
    const gateway = newDataplane()
    const port = await freePort()
    await gateway.apply(snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])])], pools()))
    const old = TcpClient.connect(port)
    await old.waitFor('hello from alpha\n')

    await gateway.apply(snapshot([], pools()))
    expect(gateway.listening()).toEqual([])
    expect(await greeting(port)).toBeUndefined()
    expect(await old.closesWithin(2_000)).toBe(true)
    old.destroy()
  })

  test('a port can change from TCP to TLS terminate and back', async () => {
    const gateway = newDataplane()
    const port = await freePort()
    const cert = makeCertificate(['t.test'])
    await gateway.apply(snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])])], pools()))
    expect(await greeting(port)).toBe('hello from alpha')

    const terminate = { certificates: [cert] }
    const toTls = await gateway.apply(
      snapshot([tlsPort(port, [route('t', [backend('test/beta:3000')], { hostnames: ['t.test'], terminate })])], pools()),
    )
    expect(toTls.problems).toEqual([])
    const socket = await tlsConnect(port, 't.test', cert.certPem)
    expect((await readUntil(socket, '\n')).trim()).toBe('hello from beta')
    socket.destroy()

    const back = await gateway.apply(snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])])], pools()))
    expect(back.problems).toEqual([])
    expect(await greeting(port)).toBe('hello from alpha')
  })

  test('a TCP port and a UDP port may share a number', async () => {
    const gateway = newDataplane()
    const port = await freePort()
    const { problems } = await gateway.apply(
      snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])]), udpPort(port, [route('u', [backend('test/alpha:3000')])])], pools()),
    )
    expect(problems).toEqual([])
    expect(gateway.listening().sort()).toEqual([`tcp:${port}`, `udp:${port}`])
  })
})

describe('stop', () => {
  test('closes listeners and open connections (those of removed ports are already ended by the apply)', async () => {
    const gateway = newDataplane()
    const [removed, kept] = [await freePort(), await freePort()]
    const l4 = (ports: number[]) => ports.map((port) => tcpPort(port, [route(`r${port}`, [backend('test/alpha:3000')])]))
    await gateway.apply(snapshot(l4([removed, kept]), pools()))
    const onRemoved = TcpClient.connect(removed)
    const onKept = TcpClient.connect(kept)
    await onRemoved.waitFor('hello from alpha\n')
    await onKept.waitFor('hello from alpha\n')
    await gateway.apply(snapshot(l4([kept]), pools()))

    await gateway.stop()
    expect(await onRemoved.closesWithin(2_000)).toBe(true)
    expect(await onKept.closesWithin(2_000)).toBe(true)
    expect(gateway.stats()).toEqual({ listeners: 0, tcpConnections: 0, udpSessions: 0, udpDropped: 0 })
    expect((await gateway.apply(snapshot(l4([kept]), pools()))).problems).toEqual(['l4: data plane is stopped'])
  })
})

describe('bind failures', () => {
  test('a port in use is reported as a problem, the other ports still open, and a later apply retries', async () => {
    const blocker = createServer()
    const busy = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)))
    const free = await freePort()
    const gateway = newDataplane()
    const l4 = [tcpPort(busy, [route('busy', [backend('test/alpha:3000')])]), tcpPort(free, [route('free', [backend('test/alpha:3000')])])]

    const first = await gateway.apply(snapshot(l4, pools()))
    expect(first.problems).toHaveLength(1)
    expect(first.problems[0]).toContain(`127.0.0.1:${busy}`)
    expect(gateway.listening()).toEqual([`tcp:${free}`])
    expect(await greeting(free)).toBe('hello from alpha')

    await new Promise((resolve) => blocker.close(resolve))
    const second = await gateway.apply(snapshot(l4, pools()))
    expect(second.problems).toEqual([])
    expect(await greeting(busy)).toBe('hello from alpha')
  })

  test('bind failures for terminate and UDP listeners are reported too', async () => {
    const holder = newDataplane()
    const port = await freePort()
    const cert = makeCertificate(['x.test'])
    await holder.apply(
      snapshot([tcpPort(port, [route('r', [backend('test/alpha:3000')])]), udpPort(port, [route('u', [backend('test/alpha:3000')])])], pools()),
    )
    const second = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1' })
    try {
      const { problems } = await second.apply(
        snapshot(
          [
            tlsPort(port, [route('t', [backend('test/alpha:3000')], { terminate: { certificates: [cert] } })]),
            udpPort(port, [route('u', [backend('test/alpha:3000')])]),
          ],
          pools(),
        ),
      )
      expect(problems).toHaveLength(2)
    } finally {
      await second.stop()
    }
  })
})
