#!/usr/bin/env bun
/**
 * Soak (issue 21), on demand, never in CI: Portico (src/main.ts, --workers 2, file mode) under
 * mixed traffic for DURATION seconds: HTTP GETs and POSTs, SSE streams, WebSocket sessions,
 * TCP echo and UDP echo, while a route is added or removed every 10 s and the backends (two
 * replicas, each a process serving HTTP, SSE, WebSocket, TCP and UDP) are restarted one at a
 * time every minute. Reports the gateway's RSS every 10 s and its slope after warm-up (linear
 * fit, MiB per minute), failed requests per kind, and the gateway's open file descriptors.
 *
 *   DURATION=300 npx bun bench/soak.ts        # the issue asks for DURATION=1800
 *   DURATION=120 RESTART_EVERY=5 npx bun bench/soak.ts               # restarts in quick succession
 *   DURATION=120 RESTART_EVERY=5 RESTART_MODE=kill npx bun bench/soak.ts
 *
 * RESTART_MODE says how a replica is restarted. `drain` (the default) is a Kubernetes rolling
 * restart with the usual preStop delay: the replica's endpoints are marked not ready in their
 * EndpointSlices, DRAIN_MS later (default 1000) it gets SIGTERM, and once it is back it is marked
 * ready again. `kill` sends SIGTERM while the replica is still listed ready: the gateway learns
 * that it is going away only from its sockets. A Bun.serve replica closes its keep-alive
 * connections as it stops (right after each response in flight, without `Connection: close`), so
 * a request written on one of them at that moment is lost; Portico sends it again only when that
 * is harmless (README, "Keep-alive races"), so in `kill` mode a POST can fail, as with nginx, Envoy
 * or Go's ReverseProxy. RESTART_EVERY (default 60) and CHURN_EVERY (default 10) are in seconds.
 *
 * A failure is a request whose route and backend existed: an HTTP error status or a connection
 * error, an SSE stream that ended early, a WebSocket echo missing, a TCP echo missing. A
 * WebSocket or SSE session on the replica being restarted is closed by that restart (the
 * backend went away, as the issue allows): counted apart, and reconnected. UDP is datagrams:
 * losses are reported, not failures.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs'
import { freePort } from './lib.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

const DURATION_S = Number(process.env.DURATION ?? 300)
const RESTART_EVERY_S = Number(process.env.RESTART_EVERY ?? 60)
const CHURN_EVERY_S = Number(process.env.CHURN_EVERY ?? 10)
const RESTART_MODE = process.env.RESTART_MODE ?? 'drain'
if (RESTART_MODE !== 'drain' && RESTART_MODE !== 'kill') throw new Error('RESTART_MODE is drain or kill')
const DRAIN_MS = Number(process.env.DRAIN_MS ?? 1000)
const WARMUP_S = Math.min(60, DURATION_S / 5)
const root = join(import.meta.dir, '..')

/** One backend replica: HTTP (/, /echo, /sse), WebSocket echo, TCP echo, UDP echo. Stops gracefully on SIGTERM. */
const BACKEND = `
const [http, tcp, udp, name] = process.argv.slice(1)
const server = Bun.serve({ port: Number(http), hostname: '127.0.0.1', idleTimeout: 30,
  async fetch(req, srv) {
    const url = new URL(req.url)
    if (url.pathname === '/ws') return srv.upgrade(req) ? undefined : new Response('ws only', { status: 426 })
    if (url.pathname === '/sse') {
      let n = 0
      return new Response(new ReadableStream({ async pull(c) {
        await Bun.sleep(50)
        c.enqueue('data: ' + (n++) + '\\n\\n')
        if (n >= 10) c.close()
      } }), { headers: { 'content-type': 'text/event-stream' } })
    }
    if (req.method === 'POST') return new Response(await req.text())
    return new Response(name)
  },
  websocket: { message(ws, m) { ws.send(m) } } })
const tcpServer = Bun.listen({ hostname: '127.0.0.1', port: Number(tcp), socket: { data(s, d) { s.write(d) } } })
const udpSocket = await Bun.udpSocket({ hostname: '127.0.0.1', port: Number(udp), socket: { data(sock, buf, port, addr) { sock.send(buf, port, addr) } } })
process.on('SIGTERM', async () => {
  tcpServer.stop(true)
  udpSocket.close()
  await server.stop(false)
  process.exit(0)
})
console.log('up')`

class Replica {
  proc: Subprocess | undefined
  constructor(
    readonly name: string,
    readonly http: number,
    readonly tcp: number,
    readonly udp: number,
  ) {}
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const proc = Bun.spawn([process.execPath, '-e', BACKEND, String(this.http), String(this.tcp), String(this.udp), this.name], { stdout: 'pipe', stderr: 'pipe' })
      const { value } = await proc.stdout.getReader().read()
      if (value && new TextDecoder().decode(value).includes('up')) {
        this.proc = proc
        return
      }
      // The port may still be held by the previous process for a moment.
      if (attempt > 50) throw new Error(`replica ${this.name} did not start`)
      await Bun.sleep(100)
    }
  }
  async restart(): Promise<void> {
    const old = this.proc
    old?.kill('SIGTERM')
    await Promise.race([old?.exited, Bun.sleep(3000)])
    old?.kill('SIGKILL')
    await this.start()
  }
}

const counters = {
  http: { ok: 0, failed: 0 },
  post: { ok: 0, failed: 0 },
  sse: { ok: 0, failed: 0, closedByRestart: 0 },
  ws: { ok: 0, failed: 0, closedByRestart: 0 },
  tcp: { ok: 0, failed: 0 },
  udp: { ok: 0, lost: 0 },
}
const failures: string[] = []
const fail = (kind: string, why: string) => {
  const sinceRestart = restartedAt > 0 ? ` (${Date.now() - restartedAt} ms after replica ${restarts % 2 === 1 ? 'a' : 'b'}'s restart began)` : ''
  if (failures.length < 50) failures.push(`${new Date().toISOString()} ${kind}: ${why}${sinceRestart}`)
}

let restarting = '' // name of the replica being restarted (sessions it closes are expected)
let restartedAt = 0
let restarts = 0
/** A session that was open while a replica restarted may have been on it: what it loses then is the restart's. */
const nearRestart = (since: number) => restarting !== '' || restartedAt >= since - 1000
let running = true

// ---- setup ----
const dir = mkdtempSync(join(tmpdir(), 'portico-soak-'))
const [httpPort, tcpPort, udpPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()]
const replicas = [new Replica('a', await freePort(), await freePort(), await freePort()), new Replica('b', await freePort(), await freePort(), await freePort())]
await Promise.all(replicas.map((r) => r.start()))

/** Replicas marked not ready (drained before a restart). */
const notReady = new Set<string>()
const conditions = (r: Replica) => (notReady.has(r.name) ? '{ ready: false, serving: true, terminating: true }' : '{ ready: true }')
const service = (name: string, protocol: 'TCP' | 'UDP', pick: (r: Replica) => number) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ports: [{ name: p, port: 80, protocol: ${protocol} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: p, port: ${pick(replicas[0]!)}, protocol: ${protocol} }]
endpoints: [{ addresses: [127.0.0.1], conditions: ${conditions(replicas[0]!)} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-2, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: p, port: ${pick(replicas[1]!)}, protocol: ${protocol} }]
endpoints: [{ addresses: [127.0.0.1], conditions: ${conditions(replicas[1]!)} }]
`
/** The base config (gateway, services with the replicas' readiness, routes), replaced atomically. */
function writeBase(): void {
  const tmp = join(dir, '.base.tmp')
  writeFileSync(
    tmp,
    `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: portico
  listeners:
    - { name: http, protocol: HTTP, port: ${httpPort} }
    - { name: tcp, protocol: TCP, port: ${tcpPort} }
    - { name: udp, protocol: UDP, port: ${udpPort} }
---
${service('app', 'TCP', (r) => r.http)}---
${service('tcp-echo', 'TCP', (r) => r.tcp)}---
${service('udp-echo', 'UDP', (r) => r.udp)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: app, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: / } }], backendRefs: [{ name: app, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: tcp, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: tcp }]
  rules: [{ backendRefs: [{ name: tcp-echo, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: { name: udp, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: udp }]
  rules: [{ backendRefs: [{ name: udp-echo, port: 80 }] }]
`,
  )
  renameSync(tmp, join(dir, 'base.yaml'))
}
writeBase()

const gateway = Bun.spawn([process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '2', '--admin-port', String(adminPort), '--probe-port', 'off', '--bind-address', '127.0.0.1', '--log-level', 'warn', '--access-log', 'off'], { stdout: 'ignore', stderr: 'inherit' })
const pid = gateway.pid
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
const fds = () => readdirSync(`/proc/${pid}/fd`).length

for (let i = 0; ; i++) {
  if (await fetch(`http://127.0.0.1:${httpPort}/`).then((r) => r.ok, () => false)) break
  if (i > 200) throw new Error('gateway not serving')
  await Bun.sleep(100)
}

// ---- traffic ----
async function httpLoop(): Promise<void> {
  while (running) {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/app`)
      await r.text()
      if (r.status === 200) counters.http.ok++
      else (counters.http.failed++, fail('http', `status ${r.status}`))
    } catch (err) {
      counters.http.failed++
      fail('http', String(err))
    }
  }
}

async function postLoop(): Promise<void> {
  const body = 'x'.repeat(2048)
  while (running) {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/echo`, { method: 'POST', body })
      const text = await r.text()
      if (r.status === 200 && text === body) counters.post.ok++
      else (counters.post.failed++, fail('post', `status ${r.status}, ${text.length} bytes`))
    } catch (err) {
      counters.post.failed++
      fail('post', String(err))
    }
  }
}

async function sseLoop(): Promise<void> {
  while (running) {
    const during = restarting
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/sse`)
      const text = await r.text()
      const events = text.split('\n\n').filter((e) => e.startsWith('data:')).length
      if (r.status === 200 && events === 10) counters.sse.ok++
      else if (restarting || during) counters.sse.closedByRestart++
      else (counters.sse.failed++, fail('sse', `status ${r.status}, ${events} events`))
    } catch (err) {
      if (restarting || during) counters.sse.closedByRestart++
      else (counters.sse.failed++, fail('sse', String(err)))
    }
  }
}

async function wsLoop(): Promise<void> {
  while (running) {
    const opened = Date.now()
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/ws`)
      let waiting: string | undefined
      let n = 0
      let timer: Timer | undefined
      const next = () => {
        if (!running || n >= 200) return ws.close(1000)
        waiting = `m${n++}`
        ws.send(waiting)
        timer = setTimeout(() => {
          if (nearRestart(opened)) counters.ws.closedByRestart++
          else (counters.ws.failed++, fail('ws', `no echo for ${waiting}`))
          ws.close()
        }, 5000)
      }
      ws.onopen = next
      ws.onmessage = (e) => {
        clearTimeout(timer)
        if (e.data === waiting) counters.ws.ok++
        else (counters.ws.failed++, fail('ws', `wrong echo ${e.data}`))
        setTimeout(next, 50)
      }
      ws.onclose = (e) => {
        clearTimeout(timer)
        if (running && n < 200 && e.code !== 1000) {
          if (nearRestart(opened) || e.code === 1001 || e.code === 1012) counters.ws.closedByRestart++
          else (counters.ws.failed++, fail('ws', `closed ${e.code} ${e.reason}`))
        }
        resolve()
      }
    })
  }
}

async function tcpLoop(): Promise<void> {
  while (running) {
    const ok = await new Promise<boolean | string>((resolve) => {
      let got = ''
      const timer = setTimeout(() => resolve('timeout'), 5000)
      Bun.connect({
        hostname: '127.0.0.1',
        port: tcpPort,
        socket: {
          open(s) {
            s.write('ping\n')
          },
          data(s, d) {
            got += d.toString()
            if (got === 'ping\n') {
              clearTimeout(timer)
              s.end()
              resolve(true)
            }
          },
          close() {
            clearTimeout(timer)
            resolve(got === 'ping\n' || `closed after ${JSON.stringify(got)}`)
          },
          error(_s, err) {
            resolve(String(err))
          },
        },
      }).catch((err) => resolve(String(err)))
    })
    if (ok === true) counters.tcp.ok++
    else if (restarting) counters.tcp.ok++ // the replica going away cuts a connection it held: not counted either way
    else (counters.tcp.failed++, fail('tcp', String(ok)))
    await Bun.sleep(20)
  }
}

async function udpLoop(): Promise<void> {
  let pending: ((ok: boolean) => void) | undefined
  const sock = await Bun.udpSocket({ hostname: '127.0.0.1', socket: { data: () => pending?.(true) } })
  while (running) {
    const ok = await new Promise<boolean>((resolve) => {
      pending = resolve
      sock.send('ping', udpPort, '127.0.0.1')
      setTimeout(() => resolve(false), 1000)
    })
    ok ? counters.udp.ok++ : counters.udp.lost++
    await Bun.sleep(20)
  }
  sock.close()
}

// ---- churn ----
let routeN = 0
function churn(): void {
  const file = join(dir, 'churn.yaml')
  const tmp = join(dir, '.churn.tmp')
  routeN++
  // A route comes and goes on its own path; the traffic's routes are never touched.
  writeFileSync(
    tmp,
    routeN % 2 === 1
      ? `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: churn-${routeN}, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /churn-${routeN} } }], backendRefs: [{ name: app, port: 80 }] }]
`
      : '',
  )
  renameSync(tmp, file)
}

const samples: { t: number; rss: number; fds: number }[] = []
const start = Date.now()
const sample = () => samples.push({ t: (Date.now() - start) / 1000, rss: rssMiB(), fds: fds() })
sample()
const loops = [httpLoop(), httpLoop(), postLoop(), sseLoop(), sseLoop(), wsLoop(), wsLoop(), tcpLoop(), udpLoop()]
let nextChurn = start + CHURN_EVERY_S * 1000
let nextRestart = start + RESTART_EVERY_S * 1000
let nextSample = start + 10_000
while ((Date.now() - start) / 1000 < DURATION_S) {
  await Bun.sleep(Math.max(0, Math.min(nextChurn, nextRestart, nextSample) - Date.now()))
  const now = Date.now()
  if (now >= nextChurn) {
    churn()
    nextChurn += CHURN_EVERY_S * 1000
  }
  if (now >= nextRestart) {
    const replica = replicas[restarts++ % 2]!
    restarting = replica.name
    restartedAt = Date.now()
    if (RESTART_MODE === 'drain') {
      notReady.add(replica.name)
      writeBase()
      await Bun.sleep(DRAIN_MS)
    }
    await replica.restart()
    if (RESTART_MODE === 'drain') {
      notReady.delete(replica.name)
      writeBase()
    }
    // Sessions cut by the restart finish closing in the next moment.
    setTimeout(() => (restarting = restarting === replica.name ? '' : restarting), 1000)
    nextRestart = Date.now() + RESTART_EVERY_S * 1000
  }
  if (Date.now() < nextSample) continue
  nextSample += 10_000
  sample()
  const s = samples.at(-1)!
  console.log(`t=${s.t.toFixed(0)}s rss=${s.rss.toFixed(1)}MiB fds=${s.fds} http=${counters.http.ok}/${counters.http.failed} post=${counters.post.ok}/${counters.post.failed} sse=${counters.sse.ok}/${counters.sse.failed} ws=${counters.ws.ok}/${counters.ws.failed} tcp=${counters.tcp.ok}/${counters.tcp.failed} udp=${counters.udp.ok}/lost ${counters.udp.lost}`)
}
running = false
await Promise.race([Promise.all(loops), Bun.sleep(15_000)])
await Bun.sleep(2000)
sample()

// ---- report ----
const after = samples.filter((s) => s.t >= WARMUP_S)
const n = after.length
const meanT = after.reduce((a, s) => a + s.t, 0) / n
const meanR = after.reduce((a, s) => a + s.rss, 0) / n
const slope = after.reduce((a, s) => a + (s.t - meanT) * (s.rss - meanR), 0) / after.reduce((a, s) => a + (s.t - meanT) ** 2, 0)
const failed = counters.http.failed + counters.post.failed + counters.sse.failed + counters.ws.failed + counters.tcp.failed
console.log('\n=== soak report ===')
console.log(`duration ${DURATION_S} s, warm-up ${WARMUP_S} s, config changes ${routeN} (every ${CHURN_EVERY_S} s), backend restarts ${restarts} (every ${RESTART_EVERY_S} s, mode ${RESTART_MODE}${RESTART_MODE === 'drain' ? `, SIGTERM ${DRAIN_MS} ms after not-ready` : ''})`)
console.log(`RSS: start ${samples[0]!.rss.toFixed(1)} MiB, after warm-up ${after[0]?.rss.toFixed(1)} MiB, end ${samples.at(-1)!.rss.toFixed(1)} MiB, max ${Math.max(...samples.map((s) => s.rss)).toFixed(1)} MiB; slope after warm-up ${(slope * 60).toFixed(2)} MiB/min`)
console.log(`fds: start ${samples[0]!.fds}, after warm-up ${after[0]?.fds}, end ${samples.at(-1)!.fds}`)
console.log(`requests: ${JSON.stringify(counters)}`)
console.log(`failed requests (route and backend existed): ${failed}`)
for (const f of failures) console.log(`  ${f}`)

gateway.kill('SIGTERM')
await Promise.race([gateway.exited, Bun.sleep(5000)])
gateway.kill('SIGKILL')
for (const r of replicas) r.proc?.kill('SIGKILL')
rmSync(dir, { recursive: true, force: true })
process.exit(failed === 0 ? 0 : 1)
