/**
 * Certificate rotation under load: while clients hammer an HTTPS port (new connections and
 * keep-alive ones), its certificate changes several times. No request may fail, and every
 * handshake after a rotation must see the new certificate.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpListener } from '../../src/ir/types.ts'
import { makeCertificate, type Certificate } from '../l4/support/servers.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { fingerprintOf, handshake } from './support/clients.ts'

const ROTATIONS = 5
const WORKERS = 16

let echo: EchoUpstream

beforeAll(() => {
  echo = startEcho('v1')
})

afterAll(async () => {
  await echo.stop()
})

function plan(cert: Certificate, revision: number) {
  const https: HttpListener = { ...listener([vhost('*', [rule()])]), tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] } }
  return snapshot([port(0, [https], 'HTTPS')], [pool('p1', [echo.port])], revision)
}

test('rotating certificates under concurrent HTTPS load loses no request', async () => {
  const certificates = Array.from({ length: ROTATIONS + 1 }, () => makeCertificate(['rotate.test']))
  const dp = new HttpDataplane({ hostname: '127.0.0.1' })
  try {
    await dp.apply(plan(certificates[0]!, 1))
    const url = `https://127.0.0.1:${dp.boundPort(0)}/load`
    let ok = 0
    const failures: string[] = []
    let running = true
    const worker = async (index: number) => {
      // Even workers open a new connection per request (a handshake each), odd ones keep theirs.
      const keepalive = index % 2 === 1
      while (running) {
        try {
          const res = await fetch(url, { keepalive, tls: { rejectUnauthorized: false, serverName: 'rotate.test' } } as RequestInit)
          await res.arrayBuffer()
          if (res.status === 200) ok++
          else failures.push(`status ${res.status}`)
        } catch (err) {
          failures.push(String(err))
        }
      }
    }
    const load = Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)))

    for (let i = 1; i <= ROTATIONS; i++) {
      await Bun.sleep(150)
      const before = ok
      const result = await dp.apply(plan(certificates[i]!, i + 1))
      expect(result.problems).toEqual([])
      expect(result.opened).toEqual([])
      const seen = await handshake({ port: dp.boundPort(0)!, servername: 'rotate.test' })
      expect(seen.fingerprint).toBe(fingerprintOf(certificates[i]!.certPem))
      // The load really overlapped this rotation.
      await Bun.sleep(100)
      expect(ok).toBeGreaterThan(before)
    }
    running = false
    await load
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThan(200)
    // The port serves the last certificates' fingerprint (what the plan says).
    expect(dp.tlsFingerprint(0)).toBe(dp.active.current!.ports.get(0)!.tlsFingerprint)
  } finally {
    await dp.stop(true)
  }
}, 20_000)
