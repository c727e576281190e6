/**
 * BackendTLSPolicy on a TLSRoute Terminate listener: the gateway decrypts the client's TLS and
 * opens TLS again to the backend with the policy's CA, SNI (hostname) and subjectAltNames; a
 * backend that fails verification gets nothing and the client is closed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import type { BackendTls, WeightedBackend } from '../../src/ir/types.ts'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, pool, recordingLogger, route, snapshot, tlsPort } from './support/snapshot.ts'
import { freePort, makeCertificate, readUntil, startTlsEcho, tlsConnect, type Backend, type Certificate } from './support/servers.ts'

let front: Certificate
let backendCert: Certificate
let otherCa: Certificate
let tlsBackend: Backend
let dataplane: L4Dataplane

beforeAll(async () => {
  front = makeCertificate(['a.test'])
  backendCert = makeCertificate(['backend.test']) // self-signed: its own CA
  otherCa = makeCertificate(['backend.test'])
  tlsBackend = await startTlsEcho('tls-backend', backendCert)
})

afterAll(async () => {
  await tlsBackend.stop()
})

afterEach(async () => {
  await dataplane?.stop()
})

async function gateway(backendTls: BackendTls | { invalid: string } | undefined, terminate = true): Promise<number> {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1' })
  const port = await freePort()
  const b: WeightedBackend = { ...backend('test/tls:443'), ...(backendTls ? { backendTls } : {}) }
  const { problems } = await dataplane.apply(
    snapshot(
      [tlsPort(port, [route('term', [b], { hostnames: ['a.test'], ...(terminate ? { terminate: { certificates: [front] } } : {}) })])],
      [pool('test/tls:443', [tlsBackend.port])],
    ),
  )
  expect(problems).toEqual([])
  return port
}

/** Resolves with what the client read before the gateway closed it. */
async function readToClose(port: number): Promise<string> {
  const socket = await tlsConnect(port, 'a.test', front.certPem)
  return new Promise((resolve) => {
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (received += chunk))
    socket.on('error', () => {})
    socket.once('close', () => resolve(received))
    setTimeout(() => socket.destroy(), 5_000).unref()
  })
}

describe('TLSRoute terminate with BackendTLSPolicy', () => {
  test('the client bytes reach the backend re-encrypted, SNI = the policy hostname, chain verified against its CA', async () => {
    const port = await gateway({ hostname: 'backend.test', caPem: backendCert.certPem, subjectAltNames: [] })
    const socket = await tlsConnect(port, 'a.test', front.certPem)
    expect((await readUntil(socket, '\n')).trim()).toBe('hello from tls-backend sni=backend.test')
    socket.write('decrypted and re-encrypted\n')
    expect(await readUntil(socket, 'decrypted and re-encrypted\n')).toContain('decrypted and re-encrypted\n')
    socket.destroy()
  })

  test('subjectAltNames replace the hostname check; the hostname is still the SNI', async () => {
    const port = await gateway({ hostname: 'sni.test', caPem: backendCert.certPem, subjectAltNames: ['backend.test'] })
    const socket = await tlsConnect(port, 'a.test', front.certPem)
    expect((await readUntil(socket, '\n')).trim()).toBe('hello from tls-backend sni=sni.test')
    socket.destroy()
  })

  test('a CA that did not sign the backend certificate: closed, nothing from the backend', async () => {
    const port = await gateway({ hostname: 'backend.test', caPem: otherCa.certPem, subjectAltNames: [] })
    expect(await readToClose(port)).toBe('')
  })

  test('a hostname the certificate does not carry: closed', async () => {
    const port = await gateway({ hostname: 'wrong.test', caPem: backendCert.certPem, subjectAltNames: [] })
    expect(await readToClose(port)).toBe('')
  })

  test('subjectAltNames the certificate does not carry: closed', async () => {
    const port = await gateway({ hostname: 'backend.test', caPem: backendCert.certPem, subjectAltNames: ['other.test'] })
    expect(await readToClose(port)).toBe('')
  })

  test('an invalid policy refuses the connection rather than send plaintext', async () => {
    const hits = tlsBackend.hits
    const port = await gateway({ invalid: 'no valid CA certificate' })
    expect(await readToClose(port)).toBe('')
    expect(tlsBackend.hits).toBe(hits)
  })

  test('Passthrough ignores the policy: the client handshakes with the backend itself', async () => {
    const port = await gateway({ hostname: 'backend.test', caPem: otherCa.certPem, subjectAltNames: [] }, false)
    const socket = await tlsConnect(port, 'a.test') // no CA: the backend's own certificate, unverified
    expect((await readUntil(socket, '\n')).trim()).toBe('hello from tls-backend sni=a.test')
    socket.destroy()
  })
})
