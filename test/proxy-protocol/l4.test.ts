/**
 * PROXY protocol and connection settings on TCPRoute and TLS-passthrough listeners: the header
 * is read before anything else and never reaches the backend, a port that requires it closes
 * plain connections before connecting to a backend, optional mode takes both, routes with
 * proxyProtocol send a v1/v2 header to their backend (with the header's or the socket's
 * addresses), and maxConnections / idleTimeoutMs apply per port.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import tls from 'node:tls'
import type { ConnectionSettings } from '../../src/policy/kind.ts'
import type { L4Port, L4Route } from '../../src/ir/types.ts'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { buildProxyHeader, parseProxyHeader } from '../../src/dataplane/proxy-protocol.ts'
import { backend, pool, recordingLogger, route, snapshot, tcpPort, tlsPort } from '../l4/support/snapshot.ts'
import { freePort, makeCertificate, startTcpEcho, startTlsEcho, TcpClient, type Backend, type Certificate } from '../l4/support/servers.ts'

const V1 = 'PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n'

let echo: Backend
let certA: Certificate
let tlsA: Backend
let dataplane: L4Dataplane | undefined

/** A backend that records every byte of each connection and answers nothing. */
let recorder: { port: number; connections: string[]; server: net.Server }

beforeAll(async () => {
  echo = await startTcpEcho('alpha')
  certA = makeCertificate(['a.test'])
  tlsA = await startTlsEcho('tls-a', certA)
  const connections: string[] = []
  const server = net.createServer((socket) => {
    const index = connections.push('') - 1
    socket.on('data', (d) => (connections[index] += d.toString('latin1')))
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  recorder = { port: (server.address() as net.AddressInfo).port, connections, server }
})

afterAll(async () => {
  await echo.stop()
  await tlsA.stop()
  recorder.server.close()
})

afterEach(async () => {
  await dataplane?.stop()
  dataplane = undefined
})

const pools = () => [pool('test/alpha:3000', [echo.port]), pool('test/rec:3000', [recorder.port]), pool('test/a:443', [tlsA.port])]

async function gateway(ports: L4Port[], port?: number): Promise<number> {
  dataplane ??= new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1', connectTimeoutMs: 2_000 })
  const { problems } = await dataplane.apply(snapshot(ports, pools()))
  expect(problems).toEqual([])
  return port ?? ports[0]!.port
}

function withSettings(port: L4Port, connection: ConnectionSettings | undefined): L4Port {
  return { ...port, connection }
}

function echoRoute(): L4Route {
  return route('echo', [backend('test/alpha:3000')])
}

function recordRoute(proxyProtocol?: 'V1' | 'V2'): L4Route {
  return { ...route('rec', [backend('test/rec:3000')]), proxyProtocol }
}

async function recorded(index: number, length: number): Promise<string> {
  for (let i = 0; i < 200 && (recorder.connections[index]?.length ?? 0) < length; i++) await Bun.sleep(10)
  return recorder.connections[index] ?? ''
}

describe('PROXY protocol on TCP listeners', () => {
  test('required: the header is removed, the rest is relayed', async () => {
    const port = await gateway([withSettings(tcpPort(await freePort(), [echoRoute()]), { proxyProtocol: { optional: false } })])
    const client = TcpClient.connect(port)
    client.write(`${V1}ping\n`)
    await client.waitFor('ping\n')
    expect(client.received).toBe('hello from alpha\nping\n')
    client.destroy()
  })

  test('required: a plain connection is closed before any backend connect', async () => {
    const port = await gateway([withSettings(tcpPort(await freePort(), [echoRoute()]), { proxyProtocol: { optional: false } })])
    const hits = echo.hits
    const client = TcpClient.connect(port)
    client.write('ping\n')
    expect(await client.closesWithin(2_000)).toBe(true)
    expect(client.received).toBe('')
    expect(echo.hits).toBe(hits)
  })

  test('v2 split over many writes; optional mode also takes plain connections', async () => {
    const port = await gateway([withSettings(tcpPort(await freePort(), [echoRoute()]), { proxyProtocol: { optional: true } })])
    const header = buildProxyHeader('V2', { sourceAddress: '2001:db8::7', sourcePort: 1, destinationAddress: '2001:db8::1', destinationPort: 2 })
    const client = TcpClient.connect(port)
    for (const byte of header) {
      client.socket.write(Uint8Array.of(byte))
      await Bun.sleep(1)
    }
    client.write('v2\n')
    await client.waitFor('v2\n')
    expect(client.received).toBe('hello from alpha\nv2\n')
    client.destroy()
    const plain = TcpClient.connect(port)
    plain.write('plain\n')
    await plain.waitFor('plain\n')
    expect(plain.received).toBe('hello from alpha\nplain\n')
    plain.destroy()
  })

  test('the setting follows snapshots', async () => {
    const number = await freePort()
    await gateway([withSettings(tcpPort(number, [echoRoute()]), { proxyProtocol: { optional: false } })])
    await gateway([tcpPort(number, [echoRoute()])])
    const plain = TcpClient.connect(number)
    plain.write('plain\n')
    await plain.waitFor('plain\n')
    plain.destroy()
  })
})

describe('PROXY protocol to TCP backends', () => {
  test('v1 with the addresses of the header the client sent', async () => {
    const port = await gateway([withSettings(tcpPort(await freePort(), [recordRoute('V1')]), { proxyProtocol: { optional: false } })])
    const before = recorder.connections.length
    const client = TcpClient.connect(port)
    client.write(`${V1}payload`)
    expect(await recorded(before, V1.length + 7)).toBe(`${V1}payload`)
    client.destroy()
  })

  test('v2 with the socket addresses, before the first client byte', async () => {
    const port = await gateway([tcpPort(await freePort(), [recordRoute('V2')])])
    const before = recorder.connections.length
    const client = TcpClient.connect(port)
    await new Promise((r) => client.socket.once('connect', r))
    client.write('payload')
    const bytes = Buffer.from(await recorded(before, 28 + 7), 'latin1')
    const parsed = parseProxyHeader(bytes)
    expect(parsed).toEqual({
      kind: 'complete',
      length: 28,
      header: {
        version: 2,
        addresses: { family: 'IPv4', sourceAddress: '127.0.0.1', sourcePort: client.socket.localPort!, destinationAddress: '127.0.0.1', destinationPort: port },
      },
    })
    expect(bytes.subarray(28).toString()).toBe('payload')
    client.destroy()
  })

  test('a backend gets the header even when the client sends nothing', async () => {
    const port = await gateway([tcpPort(await freePort(), [recordRoute('V1')])])
    const before = recorder.connections.length
    const client = TcpClient.connect(port)
    expect(await recorded(before, 10)).toMatch(/^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n$/)
    client.destroy()
  })
})

describe('PROXY protocol on TLS passthrough listeners', () => {
  async function passthrough(connection: ConnectionSettings): Promise<number> {
    return gateway([withSettings(tlsPort(await freePort(), [route('a', [backend('test/a:443')], { hostnames: ['a.test'] })]), connection)])
  }

  function tlsOver(port: number, preamble: string | undefined): Promise<string> {
    return new Promise((resolve) => {
      const raw = net.connect({ port, host: '127.0.0.1' }, () => {
        if (preamble) raw.write(preamble)
        const secure = tls.connect({ socket: raw, servername: 'a.test', ca: certA.certPem })
        let text = ''
        secure.setEncoding('utf8')
        secure.on('data', (d: string) => {
          text += d
          if (text.includes('\n')) secure.destroy()
        })
        secure.on('error', () => resolve(`error: ${text}`))
        secure.on('close', () => resolve(text))
      })
      raw.on('error', () => resolve('error'))
    })
  }

  test('the header comes before the ClientHello; routing by SNI still works', async () => {
    const port = await passthrough({ proxyProtocol: { optional: false } })
    expect(await tlsOver(port, V1)).toBe('hello from tls-a sni=a.test\n')
    expect(await tlsOver(port, undefined)).toStartWith('error')
  })

  test('optional', async () => {
    const port = await passthrough({ proxyProtocol: { optional: true } })
    expect(await tlsOver(port, V1)).toBe('hello from tls-a sni=a.test\n')
    expect(await tlsOver(port, undefined)).toBe('hello from tls-a sni=a.test\n')
  })
})

describe('PROXY protocol on TLS terminate listeners', () => {
  async function terminate(connection: ConnectionSettings | undefined, proxyProtocol?: 'V1' | 'V2'): Promise<number> {
    const terminate = { certificates: [{ certPem: certA.certPem, keyPem: certA.keyPem }] }
    const routes = [
      { ...route('a', [backend(proxyProtocol ? 'test/rec:3000' : 'test/alpha:3000')], { hostnames: ['a.test'], terminate }), proxyProtocol },
    ]
    return gateway([withSettings(tlsPort(await freePort(), routes), connection)])
  }

  /** TLS through the gateway (after `preamble` in clear), then `send`; what came back, or "error: ...". */
  function tlsOver(port: number, preamble: string | undefined, send = 'ping\n', until = 'ping\n'): Promise<string> {
    return new Promise((resolve) => {
      const raw = net.connect({ port, host: '127.0.0.1' }, () => {
        if (preamble) raw.write(preamble)
        const secure = tls.connect({ socket: raw, servername: 'a.test', ca: certA.certPem }, () => secure.write(send))
        let text = ''
        secure.setEncoding('utf8')
        secure.on('data', (d: string) => {
          text += d
          if (text.includes(until)) secure.destroy()
        })
        secure.on('error', (e) => resolve(`error: ${e.message} ${text}`))
        secure.on('close', () => resolve(text))
      })
      raw.on('error', () => resolve('error'))
    })
  }

  test('the header comes before the ClientHello; the certificate still follows the SNI', async () => {
    const port = await terminate({ proxyProtocol: { optional: false } })
    expect(await tlsOver(port, V1)).toBe('hello from alpha\nping\n')
    expect(await tlsOver(port, undefined)).toStartWith('error')
  })

  test('optional; header and ClientHello in one write', async () => {
    const port = await terminate({ proxyProtocol: { optional: true } })
    expect(await tlsOver(port, undefined)).toBe('hello from alpha\nping\n')
    expect(await tlsOver(port, V1)).toBe('hello from alpha\nping\n')
  })

  test('the backend gets a PROXY header with the client the received header named', async () => {
    const port = await terminate({ proxyProtocol: { optional: false } }, 'V1')
    const before = recorder.connections.length
    void tlsOver(port, V1, 'plaintext', 'never')
    expect(await recorded(before, V1.length + 9)).toBe(`${V1}plaintext`)
  })

  test('without a received header the backend gets the socket addresses (v2)', async () => {
    const port = await terminate(undefined, 'V2')
    const before = recorder.connections.length
    void tlsOver(port, undefined, 'plaintext', 'never')
    const bytes = Buffer.from(await recorded(before, 28 + 9), 'latin1')
    expect(parseProxyHeader(bytes)).toMatchObject({ kind: 'complete', length: 28, header: { addresses: { sourceAddress: '127.0.0.1', destinationPort: port } } })
    expect(bytes.subarray(28).toString()).toBe('plaintext')
  })

  test('maxConnections and idleTimeoutMs', async () => {
    const port = await terminate({ maxConnections: 1, idleTimeoutMs: 300 })
    const held = TcpClient.connect(port)
    await new Promise((r) => held.socket.once('connect', r))
    await Bun.sleep(20)
    expect(await tlsOver(port, undefined)).toStartWith('error')
    held.destroy()
    await Bun.sleep(50)
    const started = Date.now()
    const quiet = await new Promise<number>((resolve) => {
      const secure = tls.connect({ port, host: '127.0.0.1', servername: 'a.test', ca: certA.certPem })
      secure.on('error', () => {})
      secure.resume()
      secure.on('close', () => resolve(Date.now() - started))
    })
    expect(quiet).toBeGreaterThanOrEqual(250)
    expect(quiet).toBeLessThan(2_000)
  })
})

describe('connection settings on L4 listeners', () => {
  test('maxConnections: over the limit closed at once; slots come back', async () => {
    const port = await gateway([withSettings(tcpPort(await freePort(), [echoRoute()]), { maxConnections: 2 })])
    const a = TcpClient.connect(port)
    const b = TcpClient.connect(port)
    await a.waitFor('hello')
    await b.waitFor('hello')
    const c = TcpClient.connect(port)
    expect(await c.closesWithin(2_000)).toBe(true)
    expect(c.received).toBe('')
    a.destroy()
    b.socket.end() // half-close: the backend answers with its FIN and the splice finishes
    await b.closesWithin(2_000)
    await Bun.sleep(50)
    const d = TcpClient.connect(port)
    const e = TcpClient.connect(port)
    await d.waitFor('hello')
    await e.waitFor('hello')
    d.destroy()
    e.destroy()
  })

  test('maxConnections on a TLS passthrough port', async () => {
    const port = await gateway([withSettings(tlsPort(await freePort(), [route('a', [backend('test/a:443')], { hostnames: ['a.test'] })]), { maxConnections: 1 })])
    const held = TcpClient.connect(port)
    await new Promise((r) => held.socket.once('connect', r))
    await Bun.sleep(20)
    const refused = TcpClient.connect(port)
    expect(await refused.closesWithin(2_000)).toBe(true)
    held.destroy()
  })

  test('idleTimeoutMs closes a quiet connection (the global default is an hour)', async () => {
    const port = await gateway([withSettings(tcpPort(await freePort(), [echoRoute()]), { idleTimeoutMs: 200 })])
    const client = TcpClient.connect(port)
    await client.waitFor('hello')
    const started = Date.now()
    // Traffic keeps it open.
    for (let i = 0; i < 5; i++) {
      client.write(`${i}\n`)
      await client.waitFor(`${i}\n`)
      await Bun.sleep(80)
    }
    expect(client.socket.destroyed || client.socket.readableEnded).toBe(false)
    expect(await client.closesWithin(2_000)).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
  })
})
