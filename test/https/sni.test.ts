/**
 * HTTPS listeners on one port: the certificate follows the SNI (exact, wildcard, default), the
 * Host must pick the same listener as the SNI (421 otherwise, over HTTP/1.1 and h2), h2 is
 * negotiated by ALPN, and the backend sees the real client address despite the loopback hop.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpListener } from '../../src/ir/types.ts'
import { makeCertificate, type Certificate } from '../l4/support/servers.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { fingerprintOf, h1Request, h2Request, handshake } from './support/clients.ts'

const certs: Record<string, Certificate> = {
  a: makeCertificate(['a.test']),
  b: makeCertificate(['b.test']),
  wild: makeCertificate(['*.wild.test']),
  fallback: makeCertificate(['default.test']),
}

function tlsListener(hostname: string | undefined, cert: Certificate): HttpListener {
  return { ...listener([vhost(hostname ?? '*', [rule()])], hostname), tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] } }
}

let echo: EchoUpstream
let dp: HttpDataplane
let gwPort: number

beforeAll(async () => {
  echo = startEcho('v1')
  dp = new HttpDataplane({ hostname: '127.0.0.1' })
  const listeners = [tlsListener('a.test', certs.a!), tlsListener('b.test', certs.b!), tlsListener('*.wild.test', certs.wild!), tlsListener(undefined, certs.fallback!)]
  const result = await dp.apply(snapshot([port(0, listeners, 'HTTPS')], [pool('p1', [echo.port])]))
  expect(result.problems).toEqual([])
  gwPort = dp.boundPort(0)!
})

afterAll(async () => {
  await dp.stop(true)
  await echo.stop()
})

describe('certificate selection', () => {
  test.each([
    ['a.test', 'a'],
    ['b.test', 'b'],
    ['x.wild.test', 'wild'],
    ['unknown.test', 'fallback'],
    [undefined, 'fallback'],
  ])('SNI %p gets the %s certificate', async (servername, expected) => {
    const { fingerprint } = await handshake({ port: gwPort, servername })
    expect(fingerprint).toBe(fingerprintOf(certs[expected]!.certPem))
  })
})

// [SNI, Host, expected status]: 421 exactly when SNI and Host choose different listeners.
const misdirection: [string, string, number][] = [
  ['a.test', 'a.test', 200],
  ['a.test', 'b.test', 421],
  ['b.test', 'a.test', 421],
  ['x.wild.test', 'y.wild.test', 200],
  ['x.wild.test', 'a.test', 421],
  ['a.test', 'other.test', 421],
  ['unknown.test', 'other.test', 200],
  ['unknown.test', 'a.test', 421],
]

describe('misdirected requests', () => {
  test.each(misdirection)('HTTP/1.1: SNI %s, Host %s → %d', async (servername, host, status) => {
    const res = await h1Request({ port: gwPort, servername }, host)
    expect(res.status).toBe(status)
  })

  test.each(misdirection)('h2: SNI %s, :authority %s → %d', async (servername, host, status) => {
    const res = await h2Request({ port: gwPort, servername }, host)
    expect(res.status).toBe(status)
  })

  test('without SNI the Host alone decides', async () => {
    expect((await h1Request({ port: gwPort }, 'b.test')).status).toBe(200)
  })
})

describe('HTTP/2', () => {
  test('ALPN picks h2 when offered and HTTP/1.1 otherwise', async () => {
    expect((await handshake({ port: gwPort, servername: 'a.test', alpn: ['h2', 'http/1.1'] })).alpn).toBe('h2')
    expect((await handshake({ port: gwPort, servername: 'a.test', alpn: ['http/1.1'] })).alpn).toBe('http/1.1')
  })

  test('an h2 request reaches the backend with the real client address and https scheme', async () => {
    // 127.0.0.2 is still loopback on Linux; the gateway's inner server only ever sees 127.0.0.1.
    const res = await h2Request({ port: gwPort, servername: 'a.test', localAddress: '127.0.0.2' }, 'a.test', '/h2?x=1')
    expect(res.status).toBe(200)
    const seen = JSON.parse(res.body) as { path: string; headers: Record<string, string> }
    expect(seen.path).toBe('/h2?x=1')
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.2')
    expect(seen.headers['x-forwarded-proto']).toBe('https')
    expect(seen.headers.host).toBe('a.test')
  })
})

describe('bad certificates', () => {
  test('a listener whose key does not match its certificate is dropped; the others keep serving', async () => {
    const broken: HttpListener = { ...tlsListener('b.test', certs.b!), tls: { certificates: [{ certPem: certs.b!.certPem, keyPem: certs.a!.keyPem }] } }
    const other = new HttpDataplane({ hostname: '127.0.0.1' })
    try {
      const result = await other.apply(snapshot([port(0, [tlsListener('a.test', certs.a!), broken], 'HTTPS')], [pool('p1', [echo.port])]))
      expect(result.ports[0]?.error).toBeUndefined()
      expect(result.problems.join('\n')).toContain('b.test')
      const bound = other.boundPort(0)!
      expect((await handshake({ port: bound, servername: 'a.test' })).fingerprint).toBe(fingerprintOf(certs.a!.certPem))
      expect((await h1Request({ port: bound, servername: 'a.test' }, 'a.test')).status).toBe(200)
    } finally {
      await other.stop(true)
    }
  })
})
