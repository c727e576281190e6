/**
 * H2Server's API for a TLS front that terminates TLS itself (the HTTPS path's next shape): the
 * front negotiates ALPN h2, connects to `h2.port` on loopback, registers the client under the
 * loopback socket's local port, and relays the decrypted bytes. This test plays that front with
 * node:tls, and checks what the server learns from registerPeer (client address, SNI) and that
 * a real gRPC client over TLS gets its calls, trailers and statuses.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import net from 'node:net'
import tls from 'node:tls'
import { H2Server } from '../../src/dataplane/http2/server.ts'
import { closeUpstreamSessions } from '../../src/dataplane/http2/upstream-sessions.ts'
import { ActiveSnapshot, compile } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import { resolveLimits } from '../../src/dataplane/http/limits.ts'
import { silentLogger } from '../../src/dataplane/log.ts'
import { eventually } from '../e2e/support.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { makeCertificate, type Certificate } from '../l4/support/servers.ts'
import { echoClient, grpc, startEchoBackend, unary, type EchoBackend } from './echo.ts'

const IR_PORT = 443
let backend: EchoBackend
let h2: H2Server
let front: tls.Server
let frontPort = 0
let cert: Certificate

beforeAll(async () => {
  backend = await startEchoBackend('tls-front-backend')
  cert = makeCertificate(['grpc.example.com'])
  const active = new ActiveSnapshot()
  const p = { ...pool('echo', [backend.port]), protocol: 'h2c' as const }
  active.swap(compile(snapshot([port(IR_PORT, [listener([vhost('grpc.example.com', [rule({ action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'echo' }, filters: [] }] } })])], 'grpc.example.com')], 'HTTPS')], [p]), new EndpointRegistry()))
  h2 = H2Server.start({ irPort: IR_PORT, active, deps: { registry: new EndpointRegistry(), logger: silentLogger }, limits: resolveLimits() })

  // The TLS front: terminate, then splice to the h2 server with the peer registered first.
  front = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ALPNProtocols: ['h2'] }, (client) => {
    const link = net.connect(h2.port, '127.0.0.1')
    link.once('connect', () => {
      h2.registerPeer(link.localPort!, { clientIp: '203.0.113.7', serverName: client.servername || undefined })
      client.pipe(link)
      link.pipe(client)
    })
    const close = () => {
      h2.closed(link.localPort)
      client.destroy()
      link.destroy()
    }
    client.on('close', close)
    client.on('error', close)
    link.on('close', close)
    link.on('error', close)
  })
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  frontPort = (front.address() as net.AddressInfo).port
})

afterAll(async () => {
  closeUpstreamSessions()
  front?.close()
  await h2?.stop(true)
  await backend?.stop()
})

function tlsClient(serverName: string): grpc.Client {
  return echoClient(frontPort, serverName, grpc.credentials.createSsl(Buffer.from(cert.certPem)), { 'grpc.ssl_target_name_override': serverName })
}

test('a gRPC call over TLS (ALPN h2) reaches the backend with the registered client address', async () => {
  const c = tlsClient('grpc.example.com')
  try {
    const r = await unary(c, 'Echo')
    expect(r.code).toBe(0)
    expect(r.answer?.backend).toBe('tls-front-backend')
    expect(r.answer?.headers['x-forwarded-for']).toBe('203.0.113.7')
    expect(r.answer?.headers['x-forwarded-proto']).toBe('https')
    expect(r.trailers['x-echo-trailer']).toBe('tls-front-backend')
  } finally {
    c.close()
  }
})

test('an authority no listener serves → UNIMPLEMENTED', async () => {
  const c = echoClient(frontPort, 'other.example.com', grpc.credentials.createSsl(Buffer.from(cert.certPem)), { 'grpc.ssl_target_name_override': 'grpc.example.com' })
  try {
    expect((await unary(c, 'Echo')).code).toBe(grpc.status.UNIMPLEMENTED)
  } finally {
    c.close()
  }
})

test('closed() forgets the peer when the front connection ends', async () => {
  const c = tlsClient('grpc.example.com')
  expect((await unary(c, 'Echo')).code).toBe(0)
  expect(h2.peerCount).toBeGreaterThan(0)
  c.close()
  await eventually(() => h2.peerCount === 0 || undefined, 5000, 'peers forgotten')
})
