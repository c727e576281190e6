/**
 * Process-wide limits (issue 21): --max-connections, the per-listener and per-client caps and
 * --request-buffer-total count every worker's connections and bodies together
 * (overload/process-gauges.ts), so `--workers N` never means N times a limit. Real sockets:
 * two in-process fronts counting in one set of gauges as two workers do, and a gateway run
 * with --workers 2.
 */
import net from 'node:net'
import { afterAll, describe, expect, test } from 'bun:test'
import { pool, simple, rule } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from '../front/support/backend.ts'
import { startFront, type Front } from '../front/support/gateway.ts'
import { statusesOf } from './support/raw.ts'
import { ProcessGauges } from '../../src/dataplane/overload/process-gauges.ts'
import { ConfigDir, baseManifests, eventually, freePort, route } from '../e2e/support.ts'

const be: RawBackend = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target} ${r.body.length}`)))
const fronts: Front[] = []
const cfg = new ConfigDir()
let proc: ReturnType<typeof Bun.spawn> | undefined
afterAll(async () => {
  proc?.kill('SIGTERM')
  await proc?.exited
  for (const f of fronts) await f.stop()
  be.stop()
  cfg.cleanup()
})

const LIMITS = { maxConnections: 0, maxListenerConnections: 0, maxConnectionsPerClient: 0, maxAcceptRate: 0 }

/** Two fronts counting in the columns of one set of gauges, as two workers do. */
async function twoWorkers(limits: Parameters<typeof startFront>[1]): Promise<[Front, Front]> {
  const shared = ProcessGauges.create(2)
  const a = await startFront(simple(0, [rule({})], [pool('p1', [be.port])]), limits, new ProcessGauges(shared.buffer, 0))
  const b = await startFront(simple(0, [rule({})], [pool('p1', [be.port])]), limits, new ProcessGauges(shared.buffer, 1))
  fronts.push(a, b)
  return [a, b]
}

interface Conn {
  readonly s: net.Socket
  text(): string
  isClosed(): boolean
}

function connect(p: number, localAddress?: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    let text = ''
    let isClosed = false
    const s = net.connect({ port: p, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => resolve({ s, text: () => text, isClosed: () => isClosed }))
    s.setEncoding('latin1')
    s.on('data', (d: string) => (text += d))
    s.on('close', () => (isClosed = true))
    s.on('error', (err) => (isClosed ? undefined : reject(err)))
  })
}

/** One GET on an open connection: its status, or 0 when the connection closed without an answer. */
async function get(c: Conn): Promise<number> {
  const before = statusesOf(c.text()).length
  if (!c.isClosed()) c.s.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
  const end = Date.now() + 10_000
  while (Date.now() < end) {
    const statuses = statusesOf(c.text())
    if (statuses.length > before) return statuses[before]!
    if (c.isClosed()) return 0
    await Bun.sleep(5)
  }
  throw new Error('no answer')
}

/** Open a connection and GET on it: the connection (kept open) and whether it was served. */
async function served(p: number, localAddress?: string): Promise<{ ok: boolean; conn: Conn | undefined }> {
  const c = await connect(p, localAddress).catch(() => undefined)
  if (!c) return { ok: false, conn: undefined }
  return { ok: (await get(c).catch(() => 0)) === 200, conn: c }
}

describe('process gauges', () => {
  test('two workers count in their own columns against one total; a dead worker is forgotten', () => {
    const w0 = ProcessGauges.create(2)
    const w1 = new ProcessGauges(w0.buffer, 1)
    const limits = { ...LIMITS, maxConnections: 3, maxConnectionsPerClient: 2 }
    const slot = w0.listenerSlot(8080)
    expect(w1.listenerSlot(8080)).toBe(slot)
    expect(w0.admit('10.0.0.1', slot, 0, limits)).toBeUndefined()
    expect(w1.admit('10.0.0.1', slot, 0, limits)).toBeUndefined()
    // The address has 2 (one in each worker): its third is refused in either.
    expect(w0.admit('10.0.0.1', slot, 0, limits)).toBe('client')
    expect(w1.admit('10.0.0.2', slot, 0, limits)).toBeUndefined()
    expect(w0.admit('10.0.0.3', slot, 0, limits)).toBe('process')
    expect(w0.open).toBe(3)
    expect(w0.listenerOpen(slot)).toBe(3)
    expect(w0.openFrom('10.0.0.1')).toBe(2)
    // Worker 1 dies with its two connections.
    w0.forget(1)
    expect(w0.open).toBe(1)
    expect(w0.openFrom('10.0.0.1')).toBe(1)
    expect(w0.admit('10.0.0.3', slot, 2, limits)).toBeUndefined()
    expect(w0.admit('10.0.0.4', slot, 2, limits)).toBe('listener')
    w0.release('10.0.0.1', slot, true)
    w0.release('10.0.0.3', slot, true)
    expect(w0.open).toBe(0)
    expect(w0.openFrom('10.0.0.1')).toBe(0)
    // Request buffering: one total.
    expect(w0.hold(800, 1500)).toBe(true)
    expect(w1.hold(800, 1500)).toBe(false)
    expect(w1.hold(700, 1500)).toBe(true)
    expect(w0.held).toBe(1500)
    w0.unhold(800)
    expect(w1.held).toBe(700)
  })
})

describe('limits across two workers (real sockets)', () => {
  test('--max-connections: the total of both fronts; refused at accept in either, the established ones served', async () => {
    const [a, b] = await twoWorkers({ maxConnections: 4 })
    const open = [await served(a.port), await served(b.port), await served(a.port), await served(b.port)]
    expect(open.map((o) => o.ok)).toEqual([true, true, true, true])
    expect((await served(a.port)).ok).toBe(false)
    expect((await served(b.port)).ok).toBe(false)
    for (const o of open) expect(await get(o.conn!)).toBe(200)
    // A slot comes back when a connection closes, whichever worker held it.
    open[1]!.conn!.s.destroy()
    await eventually(async () => {
      const again = await served(a.port)
      again.conn?.s.destroy()
      return again.ok
    }, 5000, 'a slot freed')
    for (const o of open) o.conn?.s.destroy()
  })

  test('per client address and per listener: counted across both fronts', async () => {
    const [a, b] = await twoWorkers({ maxConnectionsPerClient: 2 })
    const two = [await served(a.port), await served(b.port)]
    expect(two.map((o) => o.ok)).toEqual([true, true])
    expect((await served(a.port)).ok).toBe(false)
    expect((await served(b.port)).ok).toBe(false)
    const other = await served(b.port, '127.0.0.2')
    expect(other.ok).toBe(true)
    for (const o of [...two, other]) o.conn?.s.destroy()

    // Both fronts serve IR port 0: one listener, as a port is in every worker.
    const [c, d] = await twoWorkers({ maxListenerConnections: 3 })
    const three = [await served(c.port), await served(d.port), await served(c.port)]
    expect(three.map((o) => o.ok)).toEqual([true, true, true])
    expect((await served(d.port)).ok).toBe(false)
    for (const o of three) o.conn?.s.destroy()
  })

  test('--request-buffer-total: a body held in one worker leaves the other less room; past it bodies stream', async () => {
    const [a, b] = await twoWorkers({ requestBufferBytes: 1000, requestBufferTotalBytes: 1500 })
    const first = await connect(a.port)
    first.s.write(`POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n${'a'.repeat(800)}`)
    await eventually(() => a.dp.gate.gauges.held === 800 || undefined, 5000, 'first held')
    // 800 + 800 > 1500 across the two: the second goes upstream with what it has.
    const second = await connect(b.port)
    second.s.write(`POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n${'b'.repeat(800)}`)
    await eventually(() => be.received().includes('POST /b ') || undefined, 5000, 'second streams')
    expect(be.received()).not.toContain('POST /a ')
    first.s.write('a'.repeat(200))
    second.s.write('b'.repeat(200))
    await eventually(() => (statusesOf(first.text()).length === 1 && statusesOf(second.text()).length === 1) || undefined, 5000, 'both answered')
    expect(first.text()).toContain('POST /a 1000')
    expect(second.text()).toContain('POST /b 1000')
    expect(a.dp.gate.gauges.held).toBe(0)
    first.s.destroy()
    second.s.destroy()
  })
})

test('--workers 2 --max-connections 4: the process serves 4 connections, not 4 per worker', async () => {
  const port = await freePort()
  const adminPort = await freePort()
  cfg.write('m.yaml', baseManifests(port, { v1: be.port }) + '---\n' + route('r', '/', 'v1'))
  proc = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', '0', '--workers', '2', '--max-connections', '4', '--log-level', 'error'], { stdout: 'ignore', stderr: 'inherit' })
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200, 10_000, 'ready')
  await eventually(async () => {
    const probe = await served(port)
    probe.conn?.s.destroy()
    return probe.ok
  }, 10_000, 'routes live')
  // The probes' slots are given back before the count starts.
  await eventually(async () => /portico_connections_open 0\b/.test(await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) => r.text())) || undefined, 5000, 'probes closed')
  // Twelve connections held open at once, spread by the kernel over both workers (SO_REUSEPORT):
  // per worker, 8 or so would be served; for the process, exactly 4.
  const results = []
  for (let i = 0; i < 12; i++) results.push(await served(port))
  try {
    expect(results.filter((r) => r.ok).length).toBe(4)
    for (const r of results.filter((r) => r.ok)) expect(await get(r.conn!)).toBe(200)
    const metrics = await eventually(async () => {
      const text = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) => r.text())
      return /portico_connections_refused_total\{reason="process"\} 8\b/.test(text) ? text : undefined
    }, 5000, 'refusals summed over the workers')
    expect(metrics).toMatch(/portico_connections_open 4\b/)
  } finally {
    for (const r of results) r.conn?.s.destroy()
  }
})
