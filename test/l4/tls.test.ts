import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, pool, recordingLogger, route, snapshot, tlsPort } from './support/snapshot.ts'
import {
  freePort,
  makeCertificate,
  opensslClient,
  readUntil,
  startTcpEcho,
  startTlsEcho,
  TcpClient,
  tlsConnect,
  type Backend,
  type Certificate,
} from './support/servers.ts'

let certA: Certificate
let certB: Certificate
let certWild: Certificate
let backendA: Backend
let backendB: Backend
let backendWild: Backend
let plain: Backend
let dataplane: L4Dataplane

beforeAll(async () => {
  certA = makeCertificate(['a.test'])
  certB = makeCertificate(['b.test'])
  certWild = makeCertificate(['*.wild.test'])
  backendA = await startTlsEcho('tls-a', certA)
  backendB = await startTlsEcho('tls-b', certB)
  backendWild = await startTlsEcho('tls-wild', certWild)
  plain = await startTcpEcho('plain')
})

afterAll(async () => {
  for (const server of [backendA, backendB, backendWild, plain]) await server.stop()
})

afterEach(async () => {
  await dataplane?.stop()
})

async function passthroughGateway(): Promise<number> {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1' })
  const port = await freePort()
  const { problems } = await dataplane.apply(
    snapshot(
      [
        tlsPort(port, [
          route('a', [backend('test/a:443')], { hostnames: ['a.test'] }),
          route('b', [backend('test/b:443')], { hostnames: ['b.test'] }),
          route('wild', [backend('test/wild:443')], { hostnames: ['*.wild.test'] }),
          route('deeper-wild', [backend('test/a:443')], { hostnames: ['*.deep.wild.test'] }),
        ]),
      ],
      [pool('test/a:443', [backendA.port]), pool('test/b:443', [backendB.port]), pool('test/wild:443', [backendWild.port])],
    ),
  )
  expect(problems).toEqual([])
  return port
}

/** Full TLS handshake with the backend through the gateway; returns the backend's greeting. */
async function handshakeThrough(port: number, servername: string, ca: string): Promise<string> {
  const socket = await tlsConnect(port, servername, ca)
  try {
    const greeting = await readUntil(socket, '\n')
    socket.write('ping\n')
    await readUntil(socket, 'ping\n')
    return greeting.split('\n')[0]!
  } finally {
    socket.destroy()
  }
}

describe('TLSRoute passthrough', () => {
  test('routes by SNI to the backend that owns the name; TLS ends at the backend', async () => {
    const port = await passthroughGateway()
    expect(await handshakeThrough(port, 'a.test', certA.certPem)).toBe('hello from tls-a sni=a.test')
    expect(await handshakeThrough(port, 'b.test', certB.certPem)).toBe('hello from tls-b sni=b.test')
    expect(await handshakeThrough(port, 'B.Test', certB.certPem)).toBe('hello from tls-b sni=B.Test')
  })

  test('wildcards match subdomains, the longest wildcard wins', async () => {
    const port = await passthroughGateway()
    expect(await handshakeThrough(port, 'x.wild.test', certWild.certPem)).toBe('hello from tls-wild sni=x.wild.test')
    const deeper = await tlsConnect(port, 'x.deep.wild.test', undefined)
    expect((await readUntil(deeper, '\n')).trim()).toBe('hello from tls-a sni=x.deep.wild.test')
    deeper.destroy()
  })

  test('a ClientHello split over two TCP writes is reassembled', async () => {
    const port = await passthroughGateway()
    const splitter = await startSplitter(port, 11)
    try {
      expect(await handshakeThrough(splitter.port, 'b.test', certB.certPem)).toBe('hello from tls-b sni=b.test')
      expect(splitter.splits).toBe(1)
    } finally {
      splitter.server.close()
    }
  })

  test('openssl s_client: SNI picks the backend, whose certificate verifies end to end', async () => {
    const port = await passthroughGateway()
    for (const [name, certificate, greeting] of [
      ['a.test', certA, 'hello from tls-a sni=a.test'],
      ['b.test', certB, 'hello from tls-b sni=b.test'],
      ['x.wild.test', certWild, 'hello from tls-wild sni=x.wild.test'],
    ] as const) {
      const session = await opensslClient(port, name, certificate.certPem, `${greeting}\n`)
      expect(session.output).toContain('Verify return code: 0 (ok)')
      expect(session.output).toContain(`${greeting}\nping\n`)
      expect(session.exitCode).toBe(0)
    }
  })

  test('unknown SNI and missing SNI are closed without reaching a backend', async () => {
    const port = await passthroughGateway()
    const hitsBefore = backendA.hits + backendB.hits + backendWild.hits
    await expect(tlsConnect(port, 'nobody.test', undefined)).rejects.toThrow()
    await expect(tlsConnect(port, 'wild.test', undefined)).rejects.toThrow()
    await expect(tlsConnect(port, undefined, undefined)).rejects.toThrow()
    expect(backendA.hits + backendB.hits + backendWild.hits).toBe(hitsBefore)
  })

  test('garbage never crashes the gateway and is closed', async () => {
    const port = await passthroughGateway()
    const garbage = [
      'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n',
      Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5]),
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff]),
      Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]),
      crypto.getRandomValues(new Uint8Array(4096)),
    ]
    for (const bytes of garbage) {
      const client = TcpClient.connect(port)
      client.socket.write(bytes)
      expect(await client.closesWithin(3_000)).toBe(true)
    }
    // A huge, never-ending handshake record is cut off at the cap rather than buffered.
    const flood = TcpClient.connect(port)
    const header = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff])
    flood.socket.write(Buffer.concat([header, Buffer.alloc(16_000)]))
    for (let i = 0; i < 5 && !flood.socket.destroyed; i++) flood.socket.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), Buffer.alloc(16_384)]))
    expect(await flood.closesWithin(3_000)).toBe(true)
    // Still serving.
    expect(await handshakeThrough(port, 'a.test', certA.certPem)).toBe('hello from tls-a sni=a.test')
  })
})

describe('TLSRoute terminate', () => {
  async function terminateGateway(tcpIdleTimeoutMs?: number): Promise<number> {
    dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1', tcpIdleTimeoutMs })
    const port = await freePort()
    const terminate = { certificates: [certA, certB] }
    const { problems } = await dataplane.apply(
      snapshot(
        [
          tlsPort(port, [
            route('term-a', [backend('test/plain:3000')], { hostnames: ['a.test'], terminate }),
            route('term-b', [backend('test/plain:3000')], { hostnames: ['b.test'], terminate }),
          ]),
        ],
        [pool('test/plain:3000', [plain.port])],
      ),
    )
    expect(problems).toEqual([])
    return port
  }

  test('serves the certificate for the SNI and forwards plaintext to a plain backend', async () => {
    const port = await terminateGateway()
    for (const [name, certificate] of [['a.test', certA], ['b.test', certB]] as const) {
      const socket = await tlsConnect(port, name, certificate.certPem) // verifies the chain and the name
      expect(socket.getPeerX509Certificate()?.subject).toContain(`CN=${name}`)
      expect((await readUntil(socket, '\n')).trim()).toBe('hello from plain')
      socket.write('over tls\n')
      expect(await readUntil(socket, 'over tls\n')).toContain('over tls\n')
      socket.destroy()
    }
  })

  test('openssl s_client: the certificate for the SNI, plaintext to the backend', async () => {
    const port = await terminateGateway()
    for (const [name, certificate] of [['a.test', certA], ['b.test', certB]] as const) {
      const session = await opensslClient(port, name, certificate.certPem, 'hello from plain\n')
      expect(session.output).toMatch(new RegExp(`subject=\\s*CN\\s*=\\s*${name.replace('.', '\\.')}`))
      expect(session.output).toContain('Verify return code: 0 (ok)')
      expect(session.output).toContain('hello from plain\nping\n')
      expect(session.exitCode).toBe(0)
    }
  })

  test('idle timeout: a silent connection is closed, a chatty one is not', async () => {
    const port = await terminateGateway(150)
    const silent = await tlsConnect(port, 'a.test', certA.certPem)
    const chatty = await tlsConnect(port, 'a.test', certA.certPem)
    const silentClosed = new Promise<number>((resolve) => silent.once('close', () => resolve(Date.now())))
    silent.resume() // a paused stream would never see its end, nor close
    let chattyClosed = false
    chatty.once('close', () => (chattyClosed = true))
    const opened = Date.now()
    let received = ''
    chatty.setEncoding('utf8')
    chatty.on('data', (text: string) => (received += text))
    // 400 ms with a message every 50 ms each way (sent, then echoed).
    for (let i = 0; i < 8; i++) {
      chatty.write(`tick ${i}\n`)
      await Bun.sleep(50)
    }
    expect((await silentClosed) - opened).toBeGreaterThanOrEqual(140)
    expect(chattyClosed).toBe(false)
    expect(received).toContain('tick 7\n')
    chatty.destroy()
  })

  test('unknown SNI fails the handshake', async () => {
    const port = await terminateGateway()
    await expect(tlsConnect(port, 'c.test', undefined)).rejects.toThrow()
  })

  test('garbage on a terminate port is dropped and the port keeps serving', async () => {
    const port = await terminateGateway()
    const client = TcpClient.connect(port)
    client.write('definitely not TLS\r\n\r\n')
    expect(await client.closesWithin(3_000)).toBe(true)
    const socket = await tlsConnect(port, 'a.test', certA.certPem)
    expect((await readUntil(socket, '\n')).trim()).toBe('hello from plain')
    socket.destroy()
  })
})

/**
 * A TCP hop in front of the gateway that forwards the client's first chunk (its ClientHello) in
 * two writes, `at` bytes then the rest 30 ms later, and pipes everything after that unchanged.
 */
async function startSplitter(target: number, at: number): Promise<{ port: number; server: Server; splits: number }> {
  const state = { port: 0, server: undefined as unknown as Server, splits: 0 }
  state.server = createServer((client: Socket) => {
    const upstream = connect({ host: '127.0.0.1', port: target, noDelay: true })
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
    client.once('data', (first: Buffer) => {
      upstream.write(first.subarray(0, at))
      state.splits++
      setTimeout(() => {
        upstream.write(first.subarray(at))
        client.pipe(upstream)
      }, 30)
    })
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', () => resolve()))
  state.port = (state.server.address() as { port: number }).port
  return state
}
