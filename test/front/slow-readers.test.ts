/**
 * Slow readers (issue 21): clients that ask for a 1 MiB answer and do not read it hold back the
 * upstream (backpressure) instead of having the gateway buffer the answer: memory per slow
 * connection stays bounded on the direct path and on the pipeline path.
 */
import net from 'node:net'
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'
import { startRawBackend, type RawBackend } from './support/backend.ts'
import { startFront, type Front } from './support/gateway.ts'
import { memoryProbe } from './support/memory.ts'

const MIB = 1024 * 1024
const CLIENTS = 200
const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const filter = [{ type: 'RequestHeaderModifier' as const, set: [['x-f', '1']] as [string, string][], add: [], remove: [] }]

let be: RawBackend
let gw: Front

beforeAll(async () => {
  be = startRawBackend((_r, c) => {
    c.write(`HTTP/1.1 200 OK\r\ncontent-length: ${MIB}\r\n\r\n`)
    c.pump(MIB, 64 * 1024)
  })
  gw = await startFront(snapshot([port(0, [listener([vhost('*', [rule({ match: prefix('/filtered'), filters: filter }), rule({ match: prefix('/') })])])])], [pool('p1', [be.port])]))
})

afterAll(async () => {
  await gw.stop()
  be.stop()
})

async function silent(p: number, path: string): Promise<net.Socket> {
  const s = net.connect({ port: p, host: '127.0.0.1' })
  s.on('error', () => {})
  s.pause()
  await new Promise((resolve) => s.once('connect', resolve))
  s.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`)
  return s
}

for (const [name, path] of [
  ['direct', '/big'],
  ['pipeline', '/filtered/big'],
] as const) {
  test(`${name}: ${CLIENTS} clients not reading 1 MiB answers`, async () => {
    const memory = await memoryProbe()
    const sockets: net.Socket[] = []
    for (let i = 0; i < CLIENTS; i++) sockets.push(await silent(gw.port, path))
    await Bun.sleep(1500)
    const growth = memory.stop()
    // The answers are under way (held back, not refused): the last client reads its head.
    const last = sockets.at(-1)!
    let text = ''
    last.on('data', (d) => (text += d.toString('latin1')))
    last.resume()
    await Bun.sleep(200)
    for (const s of sockets) s.destroy()
    const perConnKiB = (growth * 1024) / CLIENTS
    console.log(`${name}: RSS +${growth.toFixed(1)} MiB for ${CLIENTS} slow readers of 1 MiB answers: ${perConnKiB.toFixed(0)} KiB each`)
    expect(text.startsWith('HTTP/1.1 200')).toBe(true)
    // Measured 40 KiB per connection (whole process: gateway, backend and clients); buffering the
    // answers would be 1 MiB each.
    expect(perConnKiB).toBeLessThan(256)
  }, 30_000)
}
