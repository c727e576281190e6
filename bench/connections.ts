/**
 * Memory per connection on one data plane (issue 21): IDLE keep-alive HTTP connections (each
 * served one request, then left open) and WS WebSocket sessions (client + backend connection
 * each), measured as the gateway process's RSS and JS heap growth after a full GC, divided by
 * the count. Then SLOW clients that read 1 MiB responses slowly (not at all here: the worst
 * case), to report what the gateway holds per slow reader. Targets: ≤ 2 KiB per idle
 * keep-alive connection, ≤ 5 KiB per WebSocket pair.
 *
 *   npx bun bench/connections.ts                     # IDLE=10000 WS=fit SLOW=1000
 *   WS=10000 npx bun bench/connections.ts            # where `ulimit -n` allows it
 *
 * The gateway (data planes only, test/support/gateway-process.ts) and the backend each run in
 * their own process; this process is the client, so only the gateway holds two sockets per
 * WebSocket session. 10,000 pairs need 20,000 sockets in the gateway plus the ones it already
 * has open: one more than a 20,000 file-descriptor limit allows (a backend over a unix socket
 * would still be one descriptor per session). WS=fit (the default) opens as many sessions as
 * the gateway's limit leaves room for (at most 10,000), read from its /proc entries, and says
 * how many that was. On demand only, never in CI. Timers: the front has one sweep
 * timer per port and the upstream link pool one per pool; no connection owns a timer.
 */
import { readdirSync } from 'node:fs'
import type { Socket } from 'bun'
import { GatewayProcess, mb } from '../test/support/gateway-client.ts'
import type { Snapshot } from '../src/ir/types.ts'

const IDLE = Number(process.env.IDLE ?? 10_000)
const WS_ASKED = process.env.WS ?? 'fit'
const SLOW = Number(process.env.SLOW ?? 1_000)
/**
 * Size of a slow reader's response, MiB. Kernel socket buffers (not in RSS) absorb much of a
 * 1 MiB answer, more or less depending on the machine's TCP memory pressure, so what the
 * gateway itself holds varies from run to run; SLOW_MIB=8 overflows them: the worst case.
 */
const SLOW_MIB = Number(process.env.SLOW_MIB ?? 1)
const BATCH = 500

const BACKEND = `
const body = Buffer.alloc(Number(process.env.SLOW_MIB ?? 1) * 1024 * 1024, 120)
const s = Bun.serve({ port: 0, hostname: '127.0.0.1', idleTimeout: 0,
  fetch(req, srv) {
    if (new URL(req.url).pathname.endsWith('/mib')) return new Response(body)
    return srv.upgrade(req) ? undefined : new Response('ok')
  },
  websocket: { idleTimeout: 0, message(ws, m) { ws.send(m) } } })
console.log(s.port)`

async function startBackend(): Promise<{ port: number; kill(): void }> {
  const child = Bun.spawn([process.execPath, '-e', BACKEND], { stdout: 'pipe', stderr: 'inherit', env: { ...process.env, SLOW_MIB: String(SLOW_MIB) } })
  const { value } = await child.stdout.getReader().read()
  return { port: Number(new TextDecoder().decode(value).trim()), kill: () => child.kill() }
}

/** Open `n` connections, one request each, answer read, connection kept (keep-alive). */
async function idleConnections(port: number, n: number, path = '/', readAll = true): Promise<Socket<{ got: string }>[]> {
  const sockets: Socket<{ got: string }>[] = []
  for (let i = 0; i < n; i += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, n - i) }, () =>
        Bun.connect<{ got: string; done?: () => void }>({
          hostname: '127.0.0.1',
          port,
          data: { got: '' },
          socket: {
            data(s, d) {
              if (!readAll) return
              s.data.got += d.toString('latin1')
              if (s.data.got.includes('\r\n\r\nok')) s.data.done?.()
            },
          },
        }),
      ),
    )
    await Promise.all(
      batch.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.data.done = resolve
            s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`)
            if (!readAll) resolve()
          }),
      ),
    )
    sockets.push(...batch)
  }
  return sockets
}

async function webSockets(port: number, n: number): Promise<WebSocket[]> {
  const out: WebSocket[] = []
  for (let i = 0; i < n; i += BATCH) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(BATCH, n - i) },
        () =>
          new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false } as Bun.WebSocketOptions)
            ws.onopen = () => {
              ws.onmessage = () => resolve(ws)
              ws.send('hello')
            }
            ws.onerror = reject
          }),
      ),
    )
    out.push(...batch)
  }
  return out
}

async function settled(gw: GatewayProcess): Promise<{ rss: number; heap: number; types?: Record<string, number> }> {
  await Bun.sleep(500)
  await gw.gc()
  await Bun.sleep(200)
  return gw.gc()
}

/** Sessions (two sockets each in the gateway) that fit under the gateway's open-file limit now, at most 10,000. */
async function wsThatFit(pid: number): Promise<number> {
  const limits = await Bun.file(`/proc/${pid}/limits`).text()
  const soft = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 1024)
  const open = readdirSync(`/proc/${pid}/fd`).length
  // A few descriptors of headroom for what opens meanwhile (an upstream probe, a timer fd).
  const fit = Math.min(10_000, Math.floor((soft - open - 8) / 2))
  console.log(`gateway open-file limit ${soft}, ${open} open before the sessions: room for ${fit} WebSocket pairs${fit < 10_000 ? ' (10,000 do not fit)' : ''}`)
  return fit
}

/** HEAP_TYPES=1: the object types that grew, per connection (where the heap goes). */
function typeGrowth(before: Record<string, number>, after: Record<string, number>, n: number): string {
  return Object.entries(after)
    .map(([type, count]) => [type, (count - (before[type] ?? 0)) / n] as const)
    .filter(([, per]) => per >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([type, per]) => `${type} ${per.toFixed(2)}`)
    .join(', ')
}

const perConn = (delta: number, n: number) => `${Math.round(delta / n)} B (${(delta / n / 1024).toFixed(2)} KiB)`

const backend = await startBackend()
const snapshot: Snapshot = {
  revision: 1,
  l4: [],
  http: [{ port: 0, protocol: 'HTTP', listeners: [{ id: 'gateway/bench/gw/http', virtualHosts: [{ hostname: '*', rules: [{
    // A filter: the full pipeline (inner Bun.serve + fetch) serves it, not the front's direct path.
    id: 'httproute/bench/filtered/rule/0/match/0',
    owner: { kind: 'HTTPRoute', namespace: 'bench', name: 'filtered' },
    match: { path: { type: 'PathPrefix', value: '/filtered' }, headers: [], query: [] },
    filters: [{ type: 'RequestHeaderModifier', set: [['x-f', '1']], add: [], remove: [] }],
    action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'bench/app:80' }, filters: [] }] },
  }, {
    id: 'httproute/bench/all/rule/0/match/0',
    owner: { kind: 'HTTPRoute', namespace: 'bench', name: 'all' },
    match: { path: { type: 'PathPrefix', value: '/' }, headers: [], query: [] },
    filters: [],
    action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'bench/app:80' }, filters: [] }] },
  }] }] }] }],
  pools: { 'bench/app:80': { key: 'bench/app:80', endpoints: [{ address: '127.0.0.1', port: backend.port }], protocol: 'http', policy: { type: 'RoundRobin' } } },
}
// Idle connections must outlive the measurement: keep-alive at Bun's maximum, streams never cut.
const gateway = await GatewayProcess.start(snapshot, { keepAliveIdleSeconds: 255, streamIdleSeconds: 0 })
const results: Record<string, string> = {}
try {
  // Warm-up: code paths compiled, buffers allocated once.
  for (const ws of await webSockets(gateway.port, 100)) ws.close()
  await Bun.sleep(500)

  const WS = WS_ASKED === 'fit' ? await wsThatFit(gateway.pid) : Number(WS_ASKED)
  if (WS > 0) {
    const before = await settled(gateway)
    const sessions = await webSockets(gateway.port, WS)
    const after = await settled(gateway)
    results.ws = `${WS} WebSocket sessions (client + backend connection each): RSS +${mb(after.rss - before.rss)} MiB = ${perConn(after.rss - before.rss, WS)}/pair; JS heap ${perConn(after.heap - before.heap, WS)}/pair`
    console.log(results.ws)
    for (const ws of sessions) ws.close()
    await Bun.sleep(1000)
  }

  // HTTP warm-up after the WebSocket phase: its pooled upstream links would take descriptors
  // the sessions need.
  if (IDLE > 0 || SLOW > 0) {
    for (const s of await idleConnections(gateway.port, 200)) s.end()
    await Bun.sleep(500)
  }

  if (IDLE > 0) {
    const before = await settled(gateway)
    const conns = await idleConnections(gateway.port, IDLE)
    const after = await settled(gateway)
    results.idle = `${IDLE} idle keep-alive connections: RSS +${mb(after.rss - before.rss)} MiB = ${perConn(after.rss - before.rss, IDLE)}/connection; JS heap ${perConn(after.heap - before.heap, IDLE)}/connection`
    console.log(results.idle)
    if (after.types && before.types) console.log('  objects per connection:', typeGrowth(before.types, after.types, IDLE))
    for (const s of conns) s.end()
    await Bun.sleep(1000)
  }

  // Clients that ask for 1 MiB and never read: what the gateway holds for each is what its
  // socket buffers and the front's queue keep (the upstream is paused), not the response.
  const slowPaths = [['direct path', '/mib'], ['pipeline path', '/filtered/mib']].filter(([name]) => !process.env.SLOW_PATH || name!.startsWith(process.env.SLOW_PATH))
  for (const [name, path] of SLOW > 0 ? slowPaths : []) {
    const before = await settled(gateway)
    const conns = await idleConnections(gateway.port, SLOW, path!, false)
    for (const s of conns) s.pause()
    await Bun.sleep(2000)
    const after = await settled(gateway)
    results[name!] = `${SLOW} clients not reading ${SLOW_MIB} MiB responses, ${name}: RSS +${mb(after.rss - before.rss)} MiB = ${perConn(after.rss - before.rss, SLOW)}/slow connection; JS heap ${perConn(after.heap - before.heap, SLOW)}/slow connection`
    console.log(results[name!])
    if (after.types && before.types) console.log('  objects per connection:', typeGrowth(before.types, after.types, SLOW))
    for (const s of conns) s.terminate()
    await Bun.sleep(1000)
  }
} finally {
  await gateway.stop()
  backend.kill()
}
