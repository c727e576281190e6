/**
 * Graceful stop of the front (HttpFront.stop via HttpDataplane.stop(false)): idle keep-alive
 * connections close at once, exchanges in flight on either path finish with Connection: close,
 * no new connection is accepted, and the stop resolves once they are done.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import net from 'node:net'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from './support/backend.ts'
import { header, RawClient, req } from './support/client.ts'
import { startFront, type Front } from './support/gateway.ts'

let be: RawBackend
let gw: Front

beforeAll(async () => {
  be = startRawBackend((r, c) => {
    const answer = () => c.write(ok(`${r.method} ${r.target}`))
    if (r.target.includes('/slow')) setTimeout(answer, 300)
    else answer()
  })
  gw = await startFront(
    simple(0, [
      rule({ match: { path: { type: 'PathPrefix', value: '/filtered' } }, filters: [{ type: 'RequestHeaderModifier', set: [['x-f', '1']], add: [], remove: [] }] }),
      rule({}),
    ], [pool('p1', [be.port])]),
  )
})

afterAll(async () => {
  await gw.stop()
  be.stop()
})

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', () => resolve(true))
  })
}

test('graceful stop: idle connections close now, in-flight ones (direct and inner) finish with close, new ones are refused', async () => {
  const idle = await RawClient.connect(gw.port)
  idle.write(req('GET', '/warm'))
  expect((await idle.readResponse()).status).toBe(200)
  const direct = await RawClient.connect(gw.port)
  const inner = await RawClient.connect(gw.port)
  direct.write(req('GET', '/slow/direct'))
  inner.write(req('GET', '/filtered/slow'))
  await Bun.sleep(50)

  const started = Date.now()
  const stopping = gw.dp.stop(false, 3000)
  expect(await idle.waitClosed(300)).toBe(true)
  expect(Date.now() - started).toBeLessThan(300)
  expect(await refused(gw.port)).toBe(true)

  const [d, i] = await Promise.all([direct.readResponse(), inner.readResponse()])
  expect([d.status, d.body, header(d, 'connection')]).toEqual([200, 'GET /slow/direct', 'close'])
  expect([i.status, i.body, header(i, 'connection')]).toEqual([200, 'GET /filtered/slow', 'close'])
  expect(await direct.waitClosed(500)).toBe(true)
  expect(await inner.waitClosed(500)).toBe(true)
  await stopping
  expect(Date.now() - started).toBeLessThan(1500)
})
