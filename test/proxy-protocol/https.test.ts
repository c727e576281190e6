/**
 * PROXY protocol on HTTPS listeners: the header comes before the ClientHello; the TLS front
 * removes it before anything reaches the TLS server and hands its source to the request
 * pipeline as the client address. Clients: a header written on a raw socket then upgraded with
 * node:tls connect({socket}), Bun's socket.upgradeTLS, and curl --haproxy-protocol over https.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import tls from 'node:tls'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { ConnectionSettings } from '../../src/policy/kind.ts'
import type { HttpListener, Snapshot } from '../../src/ir/types.ts'
import { buildProxyHeader } from '../../src/dataplane/proxy-protocol.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'

const cert = makeCertificate(['a.test'])
let echo: EchoUpstream
let dp: HttpDataplane | undefined

beforeAll(() => {
  echo = startEcho('tls')
})
afterAll(() => echo.stop())
afterEach(async () => {
  await dp?.stop(true)
  dp = undefined
})

function snap(connection: ConnectionSettings | undefined, revision = 1): Snapshot {
  const l: HttpListener = { ...listener([vhost('a.test', [rule()])], 'a.test'), tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] } }
  return snapshot([{ ...port(0, [l], 'HTTPS'), connection }], [pool('p1', [echo.port])], revision)
}

async function start(connection: ConnectionSettings | undefined): Promise<number> {
  dp = new HttpDataplane({ hostname: '127.0.0.1' })
  const result = await dp.apply(snap(connection))
  expect(result.problems).toEqual([])
  return dp.boundPort(0)!
}

/** Raw TCP, optional PROXY bytes, then TLS and one HTTP/1.1 GET; the echoed request or the failure. */
async function getOverTls(gwPort: number, preamble: Uint8Array | undefined, path = '/'): Promise<{ headers: Record<string, string> } | Error> {
  const raw = net.connect({ port: gwPort, host: '127.0.0.1' })
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', resolve)
    raw.once('error', reject)
  })
  if (preamble) raw.write(preamble)
  return new Promise((resolve) => {
    const secure = tls.connect({ socket: raw, servername: 'a.test', rejectUnauthorized: false }, () => {
      secure.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`)
    })
    let text = ''
    secure.on('data', (d) => (text += d.toString()))
    secure.on('error', (error) => resolve(error))
    secure.on('close', () => {
      if (!text) return resolve(new Error('closed without an answer'))
      const body = text.slice(text.indexOf('\r\n\r\n') + 4)
      try {
        resolve(JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1)))
      } catch {
        resolve(new Error(`unexpected answer: ${text.slice(0, 200)}`))
      }
    })
  })
}

describe('PROXY protocol on an HTTPS listener', () => {
  test('v1 then TLS (node:tls over the raw socket): the backend sees the header source', async () => {
    const gwPort = await start({ proxyProtocol: { optional: false } })
    const seen = await getOverTls(gwPort, Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n'))
    expect(seen).not.toBeInstanceOf(Error)
    expect((seen as { headers: Record<string, string> }).headers['x-forwarded-for']).toBe('203.0.113.7')
    expect((seen as { headers: Record<string, string> }).headers['x-forwarded-proto']).toBe('https')
  })

  test('v2 then TLS with Bun socket.upgradeTLS', async () => {
    const gwPort = await start({ proxyProtocol: { optional: false } })
    const header = buildProxyHeader('V2', { sourceAddress: '198.51.100.9', sourcePort: 1234, destinationAddress: '192.0.2.1', destinationPort: 443 })
    let text = ''
    const { promise: closed, resolve } = Promise.withResolvers<void>()
    const raw = await Bun.connect({ hostname: '127.0.0.1', port: gwPort, socket: { data() {}, close() {} } })
    raw.write(header)
    const [, secure] = raw.upgradeTLS({
      tls: { serverName: 'a.test', rejectUnauthorized: false },
      socket: {
        handshake(socket) {
          socket.write('GET /upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
        },
        data(_socket, chunk) {
          text += chunk.toString()
        },
        close: () => resolve(),
        error: () => resolve(),
      },
    })
    await closed
    secure.end()
    expect(text.startsWith('HTTP/1.1 200')).toBe(true)
    expect(text).toContain('"x-forwarded-for":"198.51.100.9"')
  })

  test('a plain TLS handshake on a port that requires the header is closed', async () => {
    const gwPort = await start({ proxyProtocol: { optional: false } })
    const seen = await getOverTls(gwPort, undefined)
    expect(seen).toBeInstanceOf(Error)
  })

  test('optional: TLS with and without a header', async () => {
    const gwPort = await start({ proxyProtocol: { optional: true } })
    const plain = await getOverTls(gwPort, undefined)
    expect((plain as { headers: Record<string, string> }).headers['x-forwarded-for']).toBe('127.0.0.1')
    const proxied = await getOverTls(gwPort, Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n'))
    expect((proxied as { headers: Record<string, string> }).headers['x-forwarded-for']).toBe('2001:db8::7')
  })

  test('curl --haproxy-protocol over https', async () => {
    const gwPort = await start({ proxyProtocol: { optional: false } })
    const proc = Bun.spawn(
      ['curl', '-sk', '--max-time', '5', '--haproxy-protocol', '--interface', '127.0.0.4', '--resolve', `a.test:${gwPort}:127.0.0.1`, `https://a.test:${gwPort}/curl`],
      { stdout: 'pipe', stderr: 'pipe' },
    )
    const out = await new Response(proc.stdout).text()
    expect(await proc.exited).toBe(0)
    expect((JSON.parse(out) as { headers: Record<string, string> }).headers['x-forwarded-for']).toBe('127.0.0.4')
    const plain = Bun.spawn(['curl', '-sk', '--max-time', '5', '--resolve', `a.test:${gwPort}:127.0.0.1`, `https://a.test:${gwPort}/curl`], { stdout: 'ignore', stderr: 'ignore' })
    expect(await plain.exited).not.toBe(0)
  })

  test('maxConnections on an HTTPS port; the setting follows snapshots', async () => {
    const gwPort = await start({ maxConnections: 1 })
    const held = net.connect({ port: gwPort, host: '127.0.0.1' })
    await new Promise((r) => held.once('connect', r))
    await Bun.sleep(20)
    expect(await getOverTls(gwPort, undefined)).toBeInstanceOf(Error)
    held.destroy()
    await Bun.sleep(50)
    expect(await getOverTls(gwPort, undefined)).not.toBeInstanceOf(Error)
    await dp!.apply(snap({ proxyProtocol: { optional: false } }, 2))
    expect(await getOverTls(gwPort, undefined)).toBeInstanceOf(Error)
    expect(await getOverTls(gwPort, Buffer.from('PROXY TCP4 203.0.113.8 192.0.2.1 1 443\r\n'))).toMatchObject({ headers: { 'x-forwarded-for': '203.0.113.8' } })
  })
})
