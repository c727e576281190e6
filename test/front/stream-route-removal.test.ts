/**
 * Streamed responses (SSE and other chunked bodies) across configuration changes: a stream keeps
 * flowing through changes that leave its rule in place, and ends cleanly, with a last-chunk at a
 * chunk boundary and then the connection, when its rule is removed. On the direct path and on
 * the pipeline's (a rule with a filter).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { startRawBackend, type RawBackend } from './support/backend.ts'
import { RawClient, req } from './support/client.ts'
import { startFront, type Front } from './support/gateway.ts'

let be: RawBackend
let timers: Timer[] = []

beforeAll(() => {
  // An endless event stream: one event per chunk every 30 ms, each chunk written in two halves
  // so that a boundary can fall between packets.
  be = startRawBackend((_req, conn) => {
    conn.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n')
    let n = 0
    const timer = setInterval(() => {
      const event = `data: ${n++}\n\n`
      const chunk = `${event.length.toString(16)}\r\n${event}\r\n`
      conn.write(chunk.slice(0, 5))
      setTimeout(() => conn.write(chunk.slice(5)), 5)
    }, 30)
    timers.push(timer)
  })
})
afterAll(() => {
  for (const t of timers) clearInterval(t)
  be.stop()
})

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const header = { type: 'ResponseHeaderModifier' as const, set: [['x-via', 'pipeline']] as [string, string][], add: [], remove: [] }

async function until(cond: () => boolean, what: string, c: RawClient, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(c.unread.slice(-300))}`)
    await Bun.sleep(5)
  }
}

/** The payload of the complete chunks received so far (the pipeline re-chunks what it relays). */
function payload(text: string): string {
  const body = text.slice(text.indexOf('\r\n\r\n') + 4)
  let out = ''
  let at = 0
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at)
    if (lineEnd < 0) return out
    const size = parseInt(body.slice(at, lineEnd), 16)
    if (!(size > 0) || body.length < lineEnd + 4 + size) return out
    out += body.slice(lineEnd + 2, lineEnd + 2 + size)
    at = lineEnd + 4 + size
  }
}

/** Everything after the response head, once it ends with a last-chunk; or what came by the deadline. */
async function readUntilLastChunk(c: RawClient, ms: number): Promise<string> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline && !c.unread.endsWith('0\r\n\r\n')) await Bun.sleep(10)
  return c.unread
}

for (const path of ['direct', 'pipeline'] as const) {
  describe(`${path} path`, () => {
    let gw: Front
    const events = rule({ match: prefix('/events'), filters: path === 'pipeline' ? [header] : [] })
    const other = rule({ match: prefix('/other') })

    beforeAll(async () => {
      gw = await startFront(simple(0, [events, other], [pool('p1', [be.port])], 1))
    })
    afterAll(async () => {
      await gw.stop()
    })

    test('an unrelated change keeps the stream; removing its rule ends it with a last-chunk, then the connection', async () => {
      const c = await RawClient.connect(gw.port)
      c.write(req('GET', '/events'))
      await until(() => payload(c.unread).includes('data: 1\n'), 'the first events', c)
      await gw.dp.apply(simple(0, [events], [pool('p1', [be.port])], 2))
      const seen = payload(c.unread).length
      await until(() => payload(c.unread).slice(seen).includes('data: '), 'events after an unrelated change', c)

      await gw.dp.apply(simple(0, [other], [pool('p1', [be.port])], 3))
      const text = await readUntilLastChunk(c, 2000)
      expect(text.endsWith('0\r\n\r\n')).toBe(true)
      expect(await c.waitClosed(2000)).toBe(true)
      // A well-formed chunked body: every chunk whole, the last-chunk after them.
      const body = text.slice(text.indexOf('\r\n\r\n') + 4)
      let at = 0
      for (;;) {
        const lineEnd = body.indexOf('\r\n', at)
        const size = parseInt(body.slice(at, lineEnd), 16)
        expect(Number.isNaN(size)).toBe(false)
        if (size === 0) {
          expect(body.slice(lineEnd + 2)).toBe('\r\n')
          break
        }
        expect(body.slice(lineEnd + 2 + size, lineEnd + 4 + size)).toBe('\r\n')
        at = lineEnd + 4 + size
      }
      if (path === 'pipeline') expect(text).toContain('x-via: pipeline')
      c.destroy()
      // The backend's side of the stream is closed too, not left writing into nothing.
      const deadline = Date.now() + 2000
      while (be.open() > 0 && Date.now() < deadline) await Bun.sleep(10)
      expect(be.open()).toBe(0)
    })
  })
}
