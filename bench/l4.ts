#!/usr/bin/env bun
/**
 * L4 benchmark (on demand, not in CI): TCP download and upload throughput, TCP ping-pong and UDP
 * round trips, direct to the backends, through Portico, through nginx's stream module and through
 * haproxy (TCP only, when installed), in the same run.
 *
 *   npx bun bench/l4.ts                          # 3 reps, 512 MiB download, 3 s per ping-pong/UDP cell
 *   REPS=5 BENCH_MB=1024 BENCH_SECONDS=5 npx bun bench/l4.ts
 *   UDP_CLIENTS=200 PP_CONNECTIONS=1,16,64 npx bun bench/l4.ts
 *   NGINX=0 HAPROXY=0 npx bun bench/l4.ts        # without the nginx / haproxy targets
 *   METRICS=upload REPS=7 npx bun bench/l4.ts    # bulk upload only: UPLOAD_CONNECTIONS (8) clients
 *                                                # writing 64 KiB blocks into a sink for BENCH_SECONDS
 *   METRICS=pingpong GATEWAY_BUN_FLAGS='--cpu-prof-md --cpu-prof-dir=/tmp/prof' npx bun bench/l4.ts
 *                                                # one kind of cell only (download, pingpong, udp), Portico profiled
 *
 * What ships is what is measured: Portico runs as the gateway process (src/main.ts --config-dir
 * <generated Gateway/TCPRoute/UDPRoute manifests> --workers 1), nginx with `worker_processes 1`
 * and the stream module (Debian: libnginx-mod-stream; installed with apt-get when missing and we
 * are root). Layout as in ../shared/bench: both proxies pinned to cpu 0 (only one is loaded at a
 * time), the backends and this process (the load) to cpu 1, via taskset. Targets are interleaved
 * and their order rotates every repetition so drift on a shared machine hits all alike; the
 * numbers are medians. Proxy CPU (utime+stime from /proc, softirq excluded) per unit of work is
 * the least noisy column when the load core is the limit. haproxy runs with `nbthread 1` in TCP
 * mode at its defaults, pinned like nginx.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Socket, udp } from 'bun'
import { benchGatewayClass, cpuTicks, median, TICK_US } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const TOTAL_BYTES = Number(process.env.BENCH_MB ?? 512) * 1024 * 1024
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3)
const PP_CONNECTIONS = (process.env.PP_CONNECTIONS ?? '1,32').split(',').map(Number)
const UDP_CLIENTS = Number(process.env.UDP_CLIENTS ?? 100)
const MESSAGE_BYTES = 64
const BASE_PORT = Number(process.env.BASE_PORT ?? 21600)
const METRICS = (process.env.METRICS ?? 'download,upload,pingpong,udp').split(',')
const UPLOAD_CONNECTIONS = Number(process.env.UPLOAD_CONNECTIONS ?? 8)
/** Extra bun flags for the Portico process, e.g. --cpu-prof (written when it exits on SIGTERM). */
const GATEWAY_BUN_FLAGS = (process.env.GATEWAY_BUN_FLAGS ?? '').split(' ').filter(Boolean)
const PROXY_CPU = 0
const LOAD_CPU = 1
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'
const root = join(import.meta.dir, '..')
const hasTaskset = Bun.which('taskset') !== null
const pin = (cpu: number, cmd: string[]) => (hasTaskset ? ['taskset', '-c', String(cpu), ...cmd] : cmd)

type Target = 'direct' | 'portico' | 'nginx' | 'haproxy'
interface Ports {
  readonly source: number
  readonly echo: number
  /** Reads and drops everything (bulk upload). */
  readonly sink: number
  /** Undefined where the target has no UDP (haproxy). */
  readonly udp: number | undefined
}

// ---------------------------------------------------------------- backends (own process, cpu 1)

async function runBackends(): Promise<void> {
  const source = startSource()
  const echo = startEcho()
  const sink = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {}, end: (socket) => void socket.end() } })
  const udpEcho = await Bun.udpSocket({
    hostname: '127.0.0.1',
    binaryType: 'uint8array',
    socket: {
      data(socket, datagram, port, address) {
        socket.send(datagram, port, address)
      },
    },
  })
  console.log(JSON.stringify({ source: source.port, echo: echo.port, sink: sink.port, udp: udpEcho.port } satisfies Ports))
  for await (const _ of Bun.stdin.stream()) break
  process.exit(0)
}

/** Sends TOTAL_BYTES to each connection as fast as the connection takes them, then closes. */
function startSource() {
  const block = new Uint8Array(1024 * 1024).fill(0x61)
  const pump = (socket: Socket<{ sent: number; offset: number }>) => {
    const state = socket.data
    while (state.sent < TOTAL_BYTES) {
      const slice = block.subarray(state.offset, Math.min(block.length, state.offset + (TOTAL_BYTES - state.sent)))
      const written = socket.write(slice)
      if (written <= 0) return
      state.sent += written
      state.offset = (state.offset + written) % block.length
      if (written < slice.length) return
    }
    socket.end()
  }
  return Bun.listen<{ sent: number; offset: number }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.data = { sent: 0, offset: 0 }
        pump(socket)
      },
      drain: pump,
      data() {},
    },
  })
}

/** Echoes every byte (small messages: write never comes back short at this size). */
function startEcho() {
  return Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.setNoDelay(true)
      },
      data(socket, chunk) {
        socket.write(chunk)
      },
    },
  })
}

// ---------------------------------------------------------------- proxies

function manifests(backends: Ports, gateway: Ports): string {
  const service = (name: string, port: number, protocol: 'TCP' | 'UDP') => `apiVersion: v1
kind: Service
metadata: { name: ${name} }
spec: { ports: [{ name: p, port: 9000, protocol: ${protocol}, targetPort: ${port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: p, port: ${port}, protocol: ${protocol} }]
endpoints: [{ addresses: [127.0.0.1] }]
---
`
  const route = (kind: 'TCPRoute' | 'UDPRoute', name: string) => `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: ${kind}
metadata: { name: ${name} }
spec:
  parentRefs: [{ name: bench, sectionName: ${name} }]
  rules: [{ backendRefs: [{ name: ${name}, port: 9000 }] }]
---
`
  return `${benchGatewayClass}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners:
    - { name: source, protocol: TCP, port: ${gateway.source} }
    - { name: echo, protocol: TCP, port: ${gateway.echo} }
    - { name: sink, protocol: TCP, port: ${gateway.sink} }
    - { name: udp, protocol: UDP, port: ${gateway.udp} }
---
${service('source', backends.source, 'TCP')}${service('echo', backends.echo, 'TCP')}${service('sink', backends.sink, 'TCP')}${service('udp', backends.udp!, 'UDP')}${route('TCPRoute', 'source')}${route('TCPRoute', 'echo')}${route('TCPRoute', 'sink')}${route('UDPRoute', 'udp')}`
}

/** nginx stream proxy, as in ../shared/bench/run.sh: 1 worker, no logs; UDP sessions kept 60 s like Portico's. */
function nginxConf(dir: string, backends: Ports, listen: Ports): string {
  mkdirSync(join(dir, 'logs'), { recursive: true })
  const conf = join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `load_module ${NGINX_STREAM_MODULE};
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 16384; }
stream {
  server { listen 127.0.0.1:${listen.source} backlog=4096 reuseport; proxy_pass 127.0.0.1:${backends.source}; }
  server { listen 127.0.0.1:${listen.echo} backlog=4096 reuseport; proxy_pass 127.0.0.1:${backends.echo}; }
  server { listen 127.0.0.1:${listen.sink} backlog=4096 reuseport; proxy_pass 127.0.0.1:${backends.sink}; }
  server { listen 127.0.0.1:${listen.udp} udp reuseport; proxy_pass 127.0.0.1:${backends.udp}; proxy_timeout 60s; }
}
`,
  )
  return conf
}

/** haproxy in TCP mode, as in ../shared/bench/run.sh: 1 thread, default buffers, no logs (no UDP). */
function haproxyConf(dir: string, backends: Ports, listen: Ports): string {
  const conf = join(dir, 'haproxy.cfg')
  const pair = (name: string, from: number, to: number) => `frontend fe_${name}
  bind 127.0.0.1:${from}
  default_backend be_${name}
backend be_${name}
  server s 127.0.0.1:${to}
`
  writeFileSync(
    conf,
    `global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${pair('source', listen.source, backends.source)}${pair('echo', listen.echo, backends.echo)}${pair('sink', listen.sink, backends.sink)}`,
  )
  return conf
}

/** The nginx binary when it and the stream module are present, installing both when we may. */
function findNginx(): string | null {
  if (process.env.NGINX === '0') return null
  const which = () => Bun.which('nginx') ?? Bun.which('nginx', { PATH: '/usr/sbin:/sbin' })
  if (which() && existsSync(NGINX_STREAM_MODULE)) return which()
  const hint = 'apt-get install -y nginx libnginx-mod-stream'
  if (process.getuid?.() !== 0 || !Bun.which('apt-get')) {
    console.error(`nginx target skipped: nginx or its stream module is missing; as root: ${hint}`)
    return null
  }
  console.error(`installing nginx and its stream module: ${hint}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const install = () => Bun.spawnSync(['apt-get', 'install', '-y', 'nginx', 'libnginx-mod-stream'], { env, stdout: 'ignore', stderr: 'inherit' }).success
  if (!install()) {
    Bun.spawnSync(['apt-get', 'update'], { env, stdout: 'ignore', stderr: 'inherit' })
    install()
  }
  if (which() && existsSync(NGINX_STREAM_MODULE)) return which()
  console.error(`nginx target skipped: install failed; try: ${hint}`)
  return null
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  // This process is the load: move it (and everything it spawns unpinned) to the load core.
  if (hasTaskset) Bun.spawnSync(['taskset', '-a', '-p', '-c', String(LOAD_CPU), String(process.pid)], { stdout: 'ignore' })
  else console.error('taskset not found: running unpinned (apt-get install -y util-linux)')

  const backends = Bun.spawn([process.execPath, import.meta.path, '--backends'], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  const direct = JSON.parse(await firstLine(backends.stdout)) as Ports
  const portico: Ports = { source: BASE_PORT, echo: BASE_PORT + 1, udp: BASE_PORT + 2, sink: BASE_PORT + 7 }
  const adminPort = BASE_PORT + 3
  const viaNginx: Ports = { source: BASE_PORT + 4, echo: BASE_PORT + 5, udp: BASE_PORT + 6, sink: BASE_PORT + 8 }
  const viaHaproxy: Ports = { source: BASE_PORT + 9, echo: BASE_PORT + 10, sink: BASE_PORT + 11, udp: undefined }

  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-l4-'))
  const configDir = join(dir, 'manifests')
  mkdirSync(configDir)
  writeFileSync(join(configDir, 'bench.yaml'), manifests(direct, portico))
  const gateway = Bun.spawn(
    pin(PROXY_CPU, [process.execPath, ...GATEWAY_BUN_FLAGS, join(root, 'src/main.ts'), '--config-dir', configDir, '--workers', '1', '--admin-port', String(adminPort), '--log-level', 'warn']),
    { stdout: 'inherit', stderr: 'inherit' },
  )
  const nginxBin = findNginx()
  const nginx = nginxBin ? Bun.spawn(pin(PROXY_CPU, [nginxBin, '-p', dir, '-c', nginxConf(dir, direct, viaNginx)]), { stdout: 'inherit', stderr: 'inherit' }) : undefined

  const haproxyBin = process.env.HAPROXY === '0' ? null : Bun.which('haproxy') ?? Bun.which('haproxy', { PATH: '/usr/sbin:/sbin' })
  if (process.env.HAPROXY !== '0' && !haproxyBin) console.error('haproxy target skipped: apt-get install -y haproxy')
  const haproxy = haproxyBin ? Bun.spawn(pin(PROXY_CPU, [haproxyBin, '-f', haproxyConf(dir, direct, viaHaproxy)]), { stdout: 'inherit', stderr: 'inherit' }) : undefined

  const targets: Target[] = ['direct', 'portico', ...(nginx ? (['nginx'] as const) : []), ...(haproxy ? (['haproxy'] as const) : [])]
  const ports: Record<Target, Ports> = { direct, portico, nginx: viaNginx, haproxy: viaHaproxy }
  const pids: Record<Target, number | undefined> = { direct: undefined, portico: gateway.pid, nginx: nginx?.pid, haproxy: haproxy?.pid }

  try {
    await waitReady(`http://127.0.0.1:${adminPort}/readyz`)
    for (const t of targets) await waitListening(ports[t].echo)
    for (const t of targets) {
      await pingPong(ports[t].echo, 1, 0.2)
      const udpPort = ports[t].udp
      if (udpPort !== undefined) await udpRoundTrips(udpPort, 4, 0.2)
    }
    // Warm-up (JIT, caches) outside the measured repetitions.
    for (const t of targets) {
      await pingPong(ports[t].echo, 8, 0.5)
      const udpPort = ports[t].udp
      if (udpPort !== undefined) await udpRoundTrips(udpPort, 8, 0.5)
      if (METRICS.includes('upload')) await upload(ports[t].sink, UPLOAD_CONNECTIONS, 0.5)
    }

    const metrics: Metric[] = [
      ...(METRICS.includes('download') ? [{ name: 'TCP download (MB/s)', unit: 'MiB', run: (p) => download(p.source) } satisfies Metric] : []),
      ...(METRICS.includes('upload') ? [{ name: `TCP upload x${UPLOAD_CONNECTIONS} (MB/s)`, unit: 'MiB', run: (p) => upload(p.sink, UPLOAD_CONNECTIONS, SECONDS) } satisfies Metric] : []),
      ...(METRICS.includes('pingpong') ? PP_CONNECTIONS.map((n): Metric => ({ name: `TCP ping-pong x${n} (rt/s)`, unit: 'rt', run: (p) => pingPong(p.echo, n, SECONDS) })) : []),
      ...(METRICS.includes('udp') ? [{ name: `UDP x${UDP_CLIENTS} clients (rt/s)`, unit: 'rt', run: (p) => (p.udp === undefined ? Promise.resolve({ rate: NaN, units: 0 }) : udpRoundTrips(p.udp, UDP_CLIENTS, SECONDS)) } satisfies Metric] : []),
    ]
    console.log(
      `L4 bench: ${REPS} reps interleaved (medians); ${TOTAL_BYTES / 1048576} MiB download on 1 connection, ${SECONDS} s per ping-pong/UDP cell, ${MESSAGE_BYTES} B messages`,
    )
    console.log(`proxies: Portico src/main.ts --workers 1, nginx ${nginx ? 'worker_processes 1 (stream)' : 'skipped'}, haproxy ${haproxy ? 'nbthread 1 (TCP only)' : 'skipped'}; ${hasTaskset ? `proxies on cpu ${PROXY_CPU}, backends + load on cpu ${LOAD_CPU}` : 'unpinned'}\n`)

    const results: { metric: Metric; values: Record<Target, Sample[]> }[] = []
    for (const metric of metrics) {
      const values: Record<Target, Sample[]> = { direct: [], portico: [], nginx: [], haproxy: [] }
      for (let r = 0; r < REPS; r++) {
        const order = targets.map((_, i) => targets[(i + r) % targets.length]!)
        for (const t of order) values[t].push(await measure(metric, ports[t], pids[t]))
      }
      results.push({ metric, values })
    }

    const proxies = targets.filter((t) => t !== 'direct' && t !== 'portico')
    const short = (t: Target) => t[0]!.toUpperCase()
    const head = ['metric'.padEnd(28), ...targets, 'P/direct', ...proxies.map((t) => `P/${t}`), ...targets.filter((t) => t !== 'direct').map((t) => `${short(t)} cpu`), 'lost']
    console.log(head[0], ...head.slice(1).map((h) => h.padStart(9)))
    for (const { metric, values } of results) {
      const rate = (t: Target) => median(values[t].map((s) => s.rate))
      const cpu = (t: Target) => median(values[t].map((s) => s.cpuUs))
      const lost = targets.filter((t) => ports[t].udp !== undefined).map((t) => values[t].reduce((a, s) => a + s.lost, 0)).join('/')
      const row = [
        ...targets.map((t) => (Number.isNaN(rate(t)) ? '-' : fmt(rate(t)))),
        (rate('portico') / rate('direct')).toFixed(2),
        ...proxies.map((t) => (Number.isNaN(rate(t)) ? '-' : (rate('portico') / rate(t)).toFixed(2))),
        ...targets.filter((t) => t !== 'direct').map((t) => (Number.isFinite(cpu(t)) ? cpu(t).toFixed(1) : '-')),
        metric.unit === 'rt' && metric.name.startsWith('UDP') ? lost : '',
      ]
      console.log(metric.name.padEnd(28), ...row.map((v) => v.padStart(9)))
    }
    console.log(`\ncpu = proxy utime+stime per MiB (download, upload) or round trip, in µs (P = Portico); lost = UDP datagrams resent after ${UDP_RESEND_MS} ms (${targets.filter((t) => ports[t].udp !== undefined).join('/')})`)
  } finally {
    gateway.kill('SIGTERM')
    nginx?.kill('SIGTERM')
    haproxy?.kill('SIGTERM')
    backends.stdin.write('stop\n')
    backends.stdin.flush()
    await Promise.all([gateway.exited, nginx?.exited, haproxy?.exited, backends.exited])
  }
}

interface Metric {
  readonly name: string
  /** What one unit of work is, for the CPU column: a MiB or a round trip. */
  readonly unit: 'MiB' | 'rt'
  readonly run: (ports: Ports) => Promise<{ rate: number; units: number; lost?: number }>
}

interface Sample {
  readonly rate: number
  /** Proxy CPU µs per unit of work (NaN for direct). */
  readonly cpuUs: number
  readonly lost: number
}

async function measure(metric: Metric, ports: Ports, pid: number | undefined): Promise<Sample> {
  const before = await cpuTicks(pid)
  const { rate, units, lost } = await metric.run(ports)
  const ticks = (await cpuTicks(pid)) - before
  return { rate, cpuUs: (ticks * TICK_US) / units, lost: lost ?? 0 }
}

// ---------------------------------------------------------------- load

async function download(port: number): Promise<{ rate: number; units: number }> {
  let received = 0
  const started = performance.now()
  await new Promise<void>((resolve, reject) => {
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        data(_socket, chunk) {
          received += chunk.length
        },
        close() {
          resolve()
        },
        connectError(_socket, error) {
          reject(error)
        },
      },
    }).catch(reject)
  })
  const seconds = (performance.now() - started) / 1000
  if (received !== TOTAL_BYTES) throw new Error(`download short: ${received} of ${TOTAL_BYTES}`)
  const mib = received / 1048576
  return { rate: mib / seconds, units: mib }
}

/**
 * `connections` clients each writing 64 KiB blocks into the sink as fast as their socket takes
 * them, for `seconds`; MiB/s accepted by the client sockets (what is still in flight in socket
 * buffers at the end, a few MiB, is counted: small against seconds of traffic).
 */
async function upload(port: number, connections: number, seconds: number): Promise<{ rate: number; units: number }> {
  const block = new Uint8Array(64 * 1024).fill(0x75)
  let written = 0
  let running = true
  const finished: Promise<void>[] = []
  for (let i = 0; i < connections; i++) {
    finished.push(
      new Promise<void>((resolve, reject) => {
        let offset = 0
        const pump = (socket: Socket<undefined>) => {
          while (running) {
            const n = socket.write(offset === 0 ? block : block.subarray(offset))
            if (n <= 0) return
            written += n
            offset = (offset + n) % block.length
            if (offset !== 0) return // short write: wait for drain
          }
          socket.end()
        }
        Bun.connect({
          hostname: '127.0.0.1',
          port,
          socket: { open: pump, drain: pump, data() {}, close: () => resolve(), connectError: (_socket, error) => reject(error) },
        }).catch(reject)
      }),
    )
  }
  const started = performance.now()
  await Bun.sleep(seconds * 1000)
  running = false
  const elapsed = (performance.now() - started) / 1000
  const mib = written / 1048576
  // a socket waiting for drain ends once it drains; the sink reads to the end
  await Promise.race([Promise.all(finished), Bun.sleep(2000)])
  return { rate: mib / elapsed, units: mib }
}

/** `connections` clients each doing send-64-B / await-64-B-back for `seconds`; total round trips per second. */
async function pingPong(port: number, connections: number, seconds: number): Promise<{ rate: number; units: number }> {
  const message = new Uint8Array(MESSAGE_BYTES).fill(0x70)
  let roundTrips = 0
  let running = true
  const finished: Promise<void>[] = []
  for (let i = 0; i < connections; i++) {
    finished.push(
      new Promise<void>((resolve, reject) => {
        let pending = 0
        Bun.connect({
          hostname: '127.0.0.1',
          port,
          socket: {
            open(socket) {
              socket.setNoDelay(true)
              pending = MESSAGE_BYTES
              socket.write(message)
            },
            data(socket, chunk) {
              pending -= chunk.length
              if (pending > 0) return
              roundTrips++
              if (!running) {
                socket.end()
                return
              }
              pending = MESSAGE_BYTES
              socket.write(message)
            },
            close() {
              resolve()
            },
            connectError(_socket, error) {
              reject(error)
            },
          },
        }).catch(reject)
      }),
    )
  }
  const started = performance.now()
  await Bun.sleep(seconds * 1000)
  running = false
  const elapsed = (performance.now() - started) / 1000
  const counted = roundTrips
  await Promise.all(finished)
  return { rate: counted / elapsed, units: counted }
}

/** A client whose datagram (or its reply) was lost sends again after this long. */
const UDP_RESEND_MS = 250

/**
 * `clients` UDP sockets (one source port each, so one session each in the proxy), each in a
 * closed loop: send 64 B, wait for the echo, send again. A lost datagram would stall its client
 * forever, so a sweep resends after UDP_RESEND_MS and counts it.
 */
async function udpRoundTrips(port: number, clients: number, seconds: number): Promise<{ rate: number; units: number; lost: number }> {
  const message = new Uint8Array(MESSAGE_BYTES).fill(0x75)
  let roundTrips = 0
  let lost = 0
  let running = true
  // A coarse clock (advanced by the sweep) keeps timestamps off the per-datagram path.
  let tick = 0
  const sentAt = new Int32Array(clients)
  const sockets: udp.ConnectedSocket<'uint8array'>[] = []
  for (let i = 0; i < clients; i++) {
    sockets.push(
      await Bun.udpSocket({
        hostname: '127.0.0.1',
        binaryType: 'uint8array',
        connect: { hostname: '127.0.0.1', port },
        socket: {
          data() {
            roundTrips++
            if (!running) return
            sentAt[i] = tick
            sockets[i]!.send(message)
          },
        },
      }),
    )
  }
  const sweepMs = 50
  const sweep = setInterval(() => {
    tick += sweepMs
    if (!running) return
    for (let i = 0; i < clients; i++) {
      if (tick - sentAt[i]! < UDP_RESEND_MS) continue
      lost++
      sentAt[i] = tick
      sockets[i]!.send(message)
    }
  }, sweepMs)
  const started = performance.now()
  for (const socket of sockets) socket.send(message)
  await Bun.sleep(seconds * 1000)
  running = false
  const elapsed = (performance.now() - started) / 1000
  const counted = roundTrips
  clearInterval(sweep)
  await Bun.sleep(50) // let replies in flight land before the sockets close
  for (const socket of sockets) socket.close()
  return { rate: counted / elapsed, units: counted, lost }
}

// ---------------------------------------------------------------- helpers

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return
    await Bun.sleep(50)
  }
  throw new Error(`${url} not ready`)
}

/** Resolves once something accepts on `port` (nginx may still be starting). */
async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).catch(() => undefined)
    if (socket) {
      socket.end()
      return
    }
    await Bun.sleep(50)
  }
  throw new Error(`port ${port} not listening`)
}

function fmt(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader()
  let text = ''
  while (!text.includes('\n')) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  return text.split('\n')[0]!
}

// Last, so every module-level constant above is initialised before main() runs.
if (process.argv[2] === '--backends') await runBackends()
else await main()
