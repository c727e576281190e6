/**
 * BackendTLSPolicy subjectAltNames: when listed, the backend certificate must carry one of them
 * (the policy hostname then only sets SNI). A certificate without a listed SAN is refused (502).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { startDataplane } from '../dataplane/harness.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import type { BackendPool } from '../../src/ir/types.ts'
import { makeCertificate } from '../l4/support/servers.ts'

// The backend's certificate names neither the SNI hostname nor the wrong SAN below.
const backendCert = makeCertificate(['backend.internal', 'alt.internal'])
let backend: Server<undefined>
let sniSeen: string[] = []

beforeAll(() => {
  backend = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    tls: { cert: backendCert.certPem, key: backendCert.keyPem },
    fetch: (req) => {
      sniSeen.push(req.headers.get('host') ?? '')
      return new Response('tls backend ok')
    },
  })
})

afterAll(() => {
  backend.stop(true)
})

function tlsPool(hostname: string, subjectAltNames: string[]): BackendPool {
  return { ...pool('p1', [backend.port!]), tls: { hostname, caPem: backendCert.certPem, subjectAltNames } }
}

async function statusThrough(p: BackendPool): Promise<number> {
  const gw = await startDataplane(simple(0, [rule()], [p]))
  try {
    const res = await fetch(`${gw.base}/`)
    await res.arrayBuffer()
    return res.status
  } finally {
    await gw.stop()
  }
}

test('a certificate carrying one of the subjectAltNames is accepted even though the hostname differs', async () => {
  expect(await statusThrough(tlsPool('sni-only.test', ['nope.internal', 'alt.internal']))).toBe(200)
})

test('a certificate carrying none of the subjectAltNames is refused with 502', async () => {
  expect(await statusThrough(tlsPool('backend.internal', ['wrong.internal']))).toBe(502)
})

test('without subjectAltNames the hostname is verified', async () => {
  expect(await statusThrough(tlsPool('backend.internal', []))).toBe(200)
  expect(await statusThrough(tlsPool('sni-only.test', []))).toBe(502)
})
