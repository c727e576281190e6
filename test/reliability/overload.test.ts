/**
 * Overload protection (issue 21): connection caps per worker, per listener and per client
 * address and an accept rate, refused at accept while established connections keep being
 * served, with a metric; load shedding (event-loop lag, memory) answering new requests 503 +
 * Retry-After while established WebSockets and the probe socket keep working. Real sockets.
 */
import net from 'node:net'
import { afterAll, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { pool, simple, rule } from '../dataplane/ir.ts'
import { ok, startRawBackend, type RawBackend } from '../front/support/backend.ts'
import { startFront, type Front } from '../front/support/gateway.ts'
import { statusesOf } from './support/raw.ts'
import { overloadCounters, overloadLines, renderOverload } from '../../src/dataplane/overload/metrics.ts'
import { ConfigDir, baseManifests, eventually, freePort, route } from '../e2e/support.ts'
import { startPortico, type Portico } from '../../src/app.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'

const be: RawBackend = startRawBackend((r, c) => c.write(ok(`${r.method} ${r.target}`)))
const fronts: Front[] = []
afterAll(async () => {
  for (const f of fronts) await f.stop()
  be.stop()
})

async function front(limits: Parameters<typeof startFront>[1]): Promise<Front> {
  const f = await startFront(simple(0, [rule({})], [pool('p1', [be.port])]), limits)
  fronts.push(f)
  return f
}

interface Conn {
  readonly s: net.Socket
  text(): string
  readonly closed: Promise<void>
  isClosed(): boolean
}

function connect(p: number, localAddress?: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    let text = ''
    let isClosed = false
    let closedResolve: () => void = () => {}
    const closed = new Promise<void>((r) => (closedResolve = r))
    const s = net.connect({ port: p, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => resolve(conn))
    const conn: Conn = { s, text: () => text, closed, isClosed: () => isClosed }
    s.setEncoding('latin1')
    s.on('data', (d: string) => (text += d))
    s.on('close', () => {
      isClosed = true
      closedResolve()
    })
    s.on('error', (err) => (isClosed ? undefined : reject(err)))
  })
}

/** One GET on an open connection; its status, or 0 if the connection closed without an answer. */
async function get(c: Conn, path = '/x'): Promise<number> {
  const before = statusesOf(c.text()).length
  c.s.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`)
  const end = Date.now() + 10_000
  while (Date.now() < end) {
    const statuses = statusesOf(c.text())
    if (statuses.length > before) return statuses[before]!
    if (c.isClosed()) return 0
    await Bun.sleep(5)
  }
  throw new Error('no answer')
}

/** Whether a new connection is served: it answers a GET (a refused one is closed at accept). */
async function served(p: number, localAddress?: string): Promise<{ ok: boolean; conn: Conn }> {
  const c = await connect(p, localAddress).catch(() => undefined)
  if (!c) return { ok: false, conn: undefined as never }
  return { ok: (await get(c).catch(() => 0)) === 200, conn: c }
}

describe('connection limits', () => {
  test('per client address: the fourth connection from one address is closed at accept; the three keep being served; another address is not affected', async () => {
    const f = await front({ maxConnectionsPerClient: 3 })
    const refused = overloadCounters.refused.client
    const three = await Promise.all([0, 1, 2].map(() => connect(f.port)))
    for (const c of three) expect(await get(c)).toBe(200)
    const fourth = await served(f.port)
    expect(fourth.ok).toBe(false)
    expect(overloadCounters.refused.client).toBe(refused + 1)
    for (const c of three) expect(await get(c)).toBe(200)
    const other = await served(f.port, '127.0.0.2')
    expect(other.ok).toBe(true)
    other.conn.s.destroy()
    // A slot comes back when a connection closes.
    three[0]!.s.destroy()
    await three[0]!.closed
    await eventually(async () => {
      const again = await served(f.port)
      again.conn?.s.destroy()
      return again.ok
    }, 5000, 'a slot freed')
    for (const c of three) c.s.destroy()
  })

  test('per worker (all listeners) and per listener: refused at accept, established ones served', async () => {
    for (const limits of [{ maxConnections: 4 }, { maxListenerConnections: 4 }]) {
      const f = await front(limits)
      const reason = 'maxConnections' in limits ? 'process' : 'listener'
      const before = overloadCounters.refused[reason]
      const four = await Promise.all([0, 1, 2, 3].map(() => connect(f.port)))
      for (const c of four) expect(await get(c)).toBe(200)
      expect((await served(f.port)).ok).toBe(false)
      expect(overloadCounters.refused[reason]).toBe(before + 1)
      for (const c of four) expect(await get(c)).toBe(200)
      for (const c of four) c.s.destroy()
    }
  })

  test('accept rate: past the burst, new connections are refused; the admitted ones are served', async () => {
    const f = await front({ maxAcceptRate: 5 })
    const before = overloadCounters.refused.rate
    const started = performance.now()
    const results = []
    for (let i = 0; i < 30; i++) results.push(await served(f.port))
    const seconds = (performance.now() - started) / 1000
    const admitted = results.filter((r) => r.ok).length
    for (const r of results) r.conn?.s.destroy()
    // A burst of 5, then 5 per second of the time the loop took (however loaded the machine).
    expect(admitted).toBeGreaterThanOrEqual(5)
    expect(admitted).toBeLessThanOrEqual(5 + Math.ceil(seconds * 5) + 1)
    expect(overloadCounters.refused.rate - before).toBe(30 - admitted)
  })

  test('the refusals are a metric', () => {
    const text = renderOverload([overloadLines()])
    expect(text).toContain('# TYPE portico_connections_refused_total counter')
    expect(text).toMatch(/portico_connections_refused_total\{reason="client"\} [1-9]/)
    expect(text).toContain('portico_connections_open')
  })
})

describe('load shedding', () => {
  test('memory over the threshold: new requests get 503 + Retry-After and the connection closes', async () => {
    const f = await front({ shedMemoryBytes: 1 })
    const before = overloadCounters.shed
    await eventually(() => f.dp.shedder.overloaded, 5000, 'overloaded')
    const c = await connect(f.port)
    c.s.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
    await c.closed
    expect(statusesOf(c.text())).toEqual([503])
    expect(c.text().toLowerCase()).toContain('retry-after: 1')
    expect(overloadCounters.shed).toBe(before + 1)
  })

  test('event-loop lag: shed while the loop is late, served again after; an established WebSocket keeps working', async () => {
    const wsBackend = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req, server) => (server.upgrade(req) ? undefined : new Response('no')),
      websocket: { message: (ws, m) => void ws.send(`echo:${m}`) },
    })
    const f = await startFront(simple(0, [rule({})], [pool('p1', [wsBackend.port!])]), { shedEventLoopLagMs: 300 })
    fronts.push(f)
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${f.port}/chat`)
      const messages: string[] = []
      ws.onmessage = (e) => void messages.push(String(e.data))
      await new Promise((resolve, reject) => {
        ws.onopen = resolve
        ws.onerror = reject
      })
      ws.send('before')
      await eventually(() => messages.includes('echo:before'), 5000, 'echo before')
      // Block this process's event loop (the front runs in it) well past the threshold.
      const until = performance.now() + 900
      while (performance.now() < until) {}
      await eventually(() => f.dp.shedder.overloaded, 2000, 'overloaded')
      const shed = await fetch(`http://127.0.0.1:${f.port}/x`)
      expect(shed.status).toBe(503)
      expect(shed.headers.get('retry-after')).toBe('1')
      ws.send('during')
      await eventually(() => messages.includes('echo:during'), 5000, 'echo while shedding')
      // The lag leaves the window: served again.
      await eventually(async () => (await fetch(`http://127.0.0.1:${f.port}/x`)).status === 200, 10_000, 'served again')
      ws.close()
    } finally {
      await wsBackend.stop(true)
    }
  })
})

describe('load shedding in a whole gateway', () => {
  let gw: Portico | undefined
  let backend: Server<undefined> | undefined
  const cfg = new ConfigDir()
  afterAll(async () => {
    await gw?.stop()
    await backend?.stop(true)
    cfg.cleanup()
  })

  test('while shedding, /healthz and /readyz on the probe socket answer 200 and /metrics reports it', async () => {
    backend = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('hi') })
    const port = await freePort()
    cfg.write('m.yaml', baseManifests(port, { app: backend.port! }) + '---\n' + route('r', '/', 'app'))
    gw = await startPortico({ configDir: cfg.dir, adminPort: 0, adminAddress: '127.0.0.1', probePort: 0, probeAddress: '127.0.0.1', bindAddress: '127.0.0.1', controllerName: 'portico.dev/gateway-controller', logger: silentLogger, limits: { shedMemoryBytes: 1 } })
    const res = await eventually(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined)
      return r?.status === 503 ? r : undefined
    }, 5000, 'shedding')
    expect(res.headers.get('retry-after')).toBe('1')
    const probe = gw.probePort!
    expect((await fetch(`http://127.0.0.1:${probe}/healthz`)).status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${probe}/readyz`)).status).toBe(200)
    const metrics = await (await fetch(`http://127.0.0.1:${probe}/metrics`)).text()
    expect(metrics).toMatch(/portico_requests_shed_total [1-9]/)
    expect(metrics).toContain('portico_overloaded 1')
  })
})
