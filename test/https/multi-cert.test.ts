/**
 * One listener with several certificateRefs: each certificate answers for the names it carries
 * (its subjectAltName), the listener's own hostname picks the certificate that covers it, and an
 * unknown SNI gets the first.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpListener } from '../../src/ir/types.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { fingerprintOf, handshake } from './support/clients.ts'

const shop = makeCertificate(['shop.test', 'www.shop.test'])
const api = makeCertificate(['api.test'])
const wild = makeCertificate(['*.multi.test'])

let echo: EchoUpstream
let dp: HttpDataplane
let gwPort: number

beforeAll(async () => {
  echo = startEcho('v1')
  dp = new HttpDataplane({ hostname: '127.0.0.1' })
  const catchAll: HttpListener = { ...listener([vhost('*', [rule()])]), tls: { certificates: [shop, api].map((c) => ({ certPem: c.certPem, keyPem: c.keyPem })) } }
  const result = await dp.apply(snapshot([port(0, [catchAll], 'HTTPS')], [pool('p1', [echo.port])]))
  expect(result.problems).toEqual([])
  gwPort = dp.boundPort(0)!
})

afterAll(async () => {
  await dp.stop(true)
  await echo.stop()
})

test.each([
  ['shop.test', shop],
  ['www.shop.test', shop],
  ['api.test', api],
  ['unknown.test', shop],
])('SNI %p gets the certificate that carries it', async (servername, cert) => {
  const { fingerprint } = await handshake({ port: gwPort, servername })
  expect(fingerprint).toBe(fingerprintOf(cert.certPem))
})

test('a hostname listener with several certificates serves the one covering its name', async () => {
  const dp2 = new HttpDataplane({ hostname: '127.0.0.1' })
  const named: HttpListener = { ...listener([vhost('x.multi.test', [rule()])], 'x.multi.test'), tls: { certificates: [api, wild].map((c) => ({ certPem: c.certPem, keyPem: c.keyPem })) } }
  await dp2.apply(snapshot([port(0, [named], 'HTTPS')], [pool('p1', [echo.port])]))
  try {
    const { fingerprint } = await handshake({ port: dp2.boundPort(0)!, servername: 'x.multi.test' })
    expect(fingerprint).toBe(fingerprintOf(wild.certPem))
  } finally {
    await dp2.stop(true)
  }
})
