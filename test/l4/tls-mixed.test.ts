/**
 * TLSRouteModeMixed: Terminate and Passthrough TLSRoutes on one port. The terminate listener
 * reads the ClientHello; a Passthrough name is spliced to its backend untouched (the backend
 * does the handshake), a Terminate name is decrypted here and sent on in plaintext.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, pool, recordingLogger, route, snapshot, tlsPort } from './support/snapshot.ts'
import { freePort, makeCertificate, readUntil, startTcpEcho, startTlsEcho, tlsConnect, type Backend, type Certificate } from './support/servers.ts'

let certTerm: Certificate
let certPass: Certificate
let plain: Backend
let tlsBackend: Backend
let dataplane: L4Dataplane

beforeAll(async () => {
  certTerm = makeCertificate(['term.test'])
  certPass = makeCertificate(['pass.test', '*.pass.test'])
  plain = await startTcpEcho('plain')
  tlsBackend = await startTlsEcho('tls-pass', certPass)
})

afterAll(async () => {
  for (const server of [plain, tlsBackend]) await server.stop()
})

afterEach(async () => {
  await dataplane?.stop()
})

async function mixedGateway(): Promise<number> {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1' })
  const port = await freePort()
  const { problems } = await dataplane.apply(
    snapshot(
      [
        tlsPort(port, [
          route('term', [backend('test/plain:3000')], { hostnames: ['term.test'], terminate: { certificates: [certTerm] } }),
          route('pass', [backend('test/tls:443')], { hostnames: ['pass.test'] }),
          route('pass-wild', [backend('test/tls:443')], { hostnames: ['*.pass.test'] }),
        ]),
      ],
      [pool('test/plain:3000', [plain.port]), pool('test/tls:443', [tlsBackend.port])],
    ),
  )
  expect(problems).toEqual([])
  return port
}

function closesWithoutData(port: number, servername: string): Promise<boolean> {
  return new Promise((resolve) => {
    tlsConnect(port, servername).then(
      (socket) => {
        let got = false
        socket.on('data', () => (got = true))
        socket.on('error', () => {})
        socket.once('close', () => resolve(!got))
      },
      () => resolve(true),
    )
  })
}

describe('TLSRoute mixed termination on one port', () => {
  test('a Terminate name is decrypted here and reaches its plain backend', async () => {
    const port = await mixedGateway()
    const socket = await tlsConnect(port, 'term.test', certTerm.certPem)
    expect(socket.getPeerX509Certificate()?.subject).toContain('CN=term.test')
    expect((await readUntil(socket, '\n')).trim()).toBe('hello from plain')
    socket.write('terminated\n')
    expect(await readUntil(socket, 'terminated\n')).toContain('terminated\n')
    socket.destroy()
  })

  test('a Passthrough name is spliced: the backend does the handshake with its own certificate', async () => {
    const port = await mixedGateway()
    for (const name of ['pass.test', 'x.pass.test']) {
      const socket = await tlsConnect(port, name, certPass.certPem) // verifies the backend's certificate
      expect(socket.getPeerX509Certificate()?.subject).toContain('CN=pass.test')
      expect((await readUntil(socket, '\n')).trim()).toBe(`hello from tls-pass sni=${name}`)
      socket.write('passed through\n')
      expect(await readUntil(socket, 'passed through\n')).toContain('passed through\n')
      socket.destroy()
    }
  })

  test('both kinds at once, interleaved, on the same port', async () => {
    const port = await mixedGateway()
    const [t, p] = await Promise.all([tlsConnect(port, 'term.test', certTerm.certPem), tlsConnect(port, 'pass.test', certPass.certPem)])
    expect((await readUntil(p, '\n')).trim()).toBe('hello from tls-pass sni=pass.test')
    expect((await readUntil(t, '\n')).trim()).toBe('hello from plain')
    t.destroy()
    p.destroy()
  })

  test('a name neither serves is closed', async () => {
    const port = await mixedGateway()
    expect(await closesWithoutData(port, 'other.test')).toBe(true)
  })
})
