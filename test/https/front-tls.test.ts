/**
 * HTTPS ports terminate TLS in the HTTP front (issue 19) and so speak the front's HTTP/1.1
 * (issue 21): pipelined requests behind an answer from the pipeline are all answered on an open
 * connection, an unknown transfer coding gets 501, the direct path tells the backend the scheme
 * was https. Plus TLS hygiene: plain HTTP on the port gets a 400 saying so, TLS 1.1 and suites
 * without forward secrecy are refused, and the server's cipher order wins.
 */
import net from 'node:net'
import * as tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpListener } from '../../src/ir/types.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { clientTrafficPolicy } from '../../src/policy/client-traffic/translate.ts'
import type { TlsProtocolSettings } from '../../src/policy/kind.ts'

const cert = makeCertificate(['front.test'])
const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const filter = [{ type: 'RequestHeaderModifier' as const, set: [['x-f', '1']] as [string, string][], add: [], remove: [] }]

let echo: EchoUpstream
let dp: HttpDataplane
let gwPort: number

beforeAll(async () => {
  echo = startEcho('v1')
  dp = new HttpDataplane({ hostname: '127.0.0.1' })
  const https: HttpListener = {
    ...listener([vhost('*', [rule({ match: prefix('/filtered'), filters: filter }), rule({ match: prefix('/') })])]),
    tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] },
  }
  const result = await dp.apply(snapshot([port(0, [https], 'HTTPS')], [pool('p1', [echo.port])]))
  expect(result.problems).toEqual([])
  gwPort = dp.boundPort(0)!
})

afterAll(async () => {
  await dp.stop(true)
  await echo.stop()
})

function connect(options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: options.port ?? gwPort, servername: 'front.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...options })
    socket.once('secureConnect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Write `bytes`, collect what comes back until `done(text)` or the connection closes. */
function collect(socket: net.Socket, bytes: string, done: (text: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = ''
    const timer = setTimeout(() => finish(false), 5000)
    const finish = (closed: boolean) => {
      clearTimeout(timer)
      resolve({ text, closed })
    }
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      text += d
      if (done(text)) finish(false)
    })
    socket.on('close', () => finish(true))
    socket.on('error', () => {})
    socket.write(bytes)
  })
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))

describe('the front parser on TLS', () => {
  test('pipelined requests behind a pipeline (async) answer are all answered, in order, and the connection stays open', async () => {
    const socket = await connect()
    try {
      const req = (path: string) => `GET ${path} HTTP/1.1\r\nHost: front.test\r\n\r\n`
      const r = await collect(socket, req('/filtered/1') + req('/2') + req('/filtered/3'), (t) => statuses(t).length === 3)
      expect(statuses(r.text)).toEqual([200, 200, 200])
      expect(r.closed).toBe(false)
      const again = await collect(socket, req('/4'), (t) => statuses(t).length === 1)
      expect(statuses(again.text)).toEqual([200])
    } finally {
      socket.destroy()
    }
  })

  test('an unknown transfer coding gets 501 and nothing is forwarded', async () => {
    const socket = await connect()
    const before = echo.requests.length
    const r = await collect(socket, 'POST / HTTP/1.1\r\nHost: front.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', (t) => t.includes('\r\n\r\n'))
    socket.destroy()
    expect(statuses(r.text)).toEqual([501])
    expect(echo.requests.length).toBe(before)
  })

  test('the direct path tells the backend the client used https', async () => {
    const socket = await connect()
    const r = await collect(socket, 'GET /proto HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n', () => false)
    socket.destroy()
    expect(statuses(r.text)).toEqual([200])
    const seen = echo.requests.findLast((x) => x.path === '/proto')!
    expect(seen.headers['x-forwarded-proto']).toBe('https')
  })
})

describe('TLS hygiene', () => {
  test('plain HTTP sent to the HTTPS port gets a 400 that says so', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: gwPort })
    await new Promise((resolve) => socket.once('connect', resolve))
    const r = await collect(socket, 'GET / HTTP/1.1\r\nHost: front.test\r\n\r\n', () => false)
    expect(statuses(r.text)).toEqual([400])
    expect(r.text).toContain('HTTPS')
    expect(r.closed).toBe(true)
  })

  test('TLS 1.1 is refused', async () => {
    await expect(connect({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })).rejects.toThrow()
  })

  test('a TLS 1.2 client offering only suites without forward secrecy or AEAD is refused', async () => {
    await expect(connect({ maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA' })).rejects.toThrow()
  })

  test("TLS 1.2: the server's order wins over the client's", async () => {
    // The client prefers the CBC suite; the server picks its first AEAD one.
    const socket = await connect({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256' })
    const cipher = socket.getCipher().name
    socket.destroy()
    expect(cipher).toBe('ECDHE-ECDSA-AES128-GCM-SHA256')
  })
})

describe('ClientTrafficPolicy tls', () => {
  test('translates to the port settings in node:tls spelling', () => {
    // ClientTrafficPolicy's features read nothing from the translation context.
    const features = clientTrafficPolicy.features(
      { tls: { minVersion: '1.3', maxVersion: 'Auto', ciphers: ['ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES128-GCM-SHA256'], ecdhCurves: ['X25519', 'P-256'], alpnProtocols: ['http/1.1'] } },
      undefined as never,
    )
    expect(features).toEqual([
      { scope: 'connection', name: 'tls', http: { tls: { minVersion: 'TLSv1.3', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256', ecdhCurves: 'X25519:P-256', alpnProtocols: ['http/1.1'] } } },
    ])
  })

  test('minVersion and alpnProtocols apply to new connections, and follow a change of the policy', async () => {
    const port2 = new HttpDataplane({ hostname: '127.0.0.1' })
    const https: HttpListener = { ...listener([vhost('*', [rule()])]), tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] } }
    const plan = (tls: TlsProtocolSettings | undefined, revision: number) => {
      const p = port(0, [https], 'HTTPS')
      return snapshot([tls ? { ...p, connection: { tls } } : p], [pool('p1', [echo.port])], revision)
    }
    try {
      expect((await port2.apply(plan({ minVersion: 'TLSv1.3', alpnProtocols: ['http/1.1'] }, 1))).problems).toEqual([])
      const at = { port: port2.boundPort(0)! }
      await expect(connect({ ...at, maxVersion: 'TLSv1.2' })).rejects.toThrow()
      const s13 = await connect({ ...at, ALPNProtocols: ['h2', 'http/1.1'] })
      expect([s13.getProtocol(), s13.alpnProtocol]).toEqual(['TLSv1.3', 'http/1.1'])
      s13.destroy()
      // The policy goes away: the defaults again (TLS 1.2 accepted, h2 preferred).
      expect((await port2.apply(plan(undefined, 2))).problems).toEqual([])
      const s12 = await connect({ ...at, maxVersion: 'TLSv1.2', ALPNProtocols: ['h2', 'http/1.1'] })
      expect([s12.getProtocol(), s12.alpnProtocol]).toEqual(['TLSv1.2', 'h2'])
      s12.destroy()
    } finally {
      await port2.stop(true)
    }
  })
})
