#!/usr/bin/env bun
/**
 * gRPC benchmark, run on demand (never in CI): unary calls with small messages and
 * bidirectional h2 streams, straight to the backend vs through Portico (GRPCRoute, h2c client
 * and backend) vs through nginx `grpc_pass`, in the same run and interleaved so drift on a
 * shared machine hits all alike.
 *
 *   npx bun bench/grpc.ts                       # 3 reps: 5 s of unary calls, then the stream test
 *   REPS=5 DURATION=10 CLIENTS=32 STREAMS_PER_CLIENT=8 npx bun bench/grpc.ts
 *   STREAMS=16 MESSAGES=20000 SIZE=1024 npx bun bench/grpc.ts
 *   NGINX=0 npx bun bench/grpc.ts               # without the nginx target
 *
 * Unary: h2load (nghttp2) posts one gRPC message (SIZE_UNARY bytes, default 16) per call on
 * CLIENTS connections with STREAMS_PER_CLIENT concurrent calls each; req/s, mean latency and the
 * proxy's CPU per call. Streams: STREAMS concurrent bidirectional calls on one connection, each
 * MESSAGES messages of SIZE bytes echoed back (bench/grpc-stream-client.ts); messages/s and CPU
 * per message. Before measuring, one call through each target must end with grpc-status 0.
 *
 * Processes: the backend (bench/grpc-backend.ts, node:http2 with hand-made gRPC framing) and
 * the load on cpu 1, the proxies on cpu 0 (taskset; one loaded at a time): Portico from
 * src/main.ts with --workers 1, nginx with worker_processes 1 and a keep-alive upstream.
 * Needs h2load (apt-get install nghttp2-client) and nginx (with its grpc module, the default).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchGatewayClass, cpuTicks, median, pin, TICK_US } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const CLIENTS = Number(process.env.CLIENTS ?? 16)
const STREAMS_PER_CLIENT = Number(process.env.STREAMS_PER_CLIENT ?? 8)
const SIZE_UNARY = Number(process.env.SIZE_UNARY ?? 16)
const STREAMS = Number(process.env.STREAMS ?? 8)
const MESSAGES = Number(process.env.MESSAGES ?? 10_000)
const SIZE = Number(process.env.SIZE ?? 1024)
const BACKEND_PORT = 23500
const GATEWAY_PORT = 23501
const ADMIN_PORT = 23502
const NGINX_PORT = 23503
const PROXY_CPU = 0
const LOAD_CPU = 1

const root = join(import.meta.dir, '..')
const dir = mkdtempSync(join(tmpdir(), 'portico-bench-grpc-'))
const nginxBin = process.env.NGINX === '0' ? null : (Bun.which('nginx') ?? Bun.which('nginx', { PATH: '/usr/sbin:/sbin' }))
if (!Bun.which('h2load')) throw new Error('h2load is needed (apt-get install nghttp2-client)')

writeFileSync(
  join(dir, 'bench.yaml'),
  `${benchGatewayClass}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners: [{ name: grpc, protocol: HTTP, port: ${GATEWAY_PORT} }]
---
apiVersion: v1
kind: Service
metadata: { name: grpc-backend }
spec: { ports: [{ name: grpc, port: 50051, targetPort: ${BACKEND_PORT}, appProtocol: kubernetes.io/h2c }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: grpc-backend, labels: { kubernetes.io/service-name: grpc-backend } }
addressType: IPv4
ports: [{ name: grpc, port: ${BACKEND_PORT} }]
endpoints: [{ addresses: [127.0.0.1] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: bench }
spec:
  parentRefs: [{ name: bench }]
  rules: [{ backendRefs: [{ name: grpc-backend, port: 50051 }] }]
`,
)
const message = Buffer.alloc(5 + SIZE_UNARY, 97)
message[0] = 0
message.writeUInt32BE(SIZE_UNARY, 1)
writeFileSync(join(dir, 'unary.bin'), message)

const backend = Bun.spawn(pin(LOAD_CPU, [process.execPath, join(import.meta.dir, 'grpc-backend.ts'), String(BACKEND_PORT)]), { stdout: 'inherit', stderr: 'inherit' })
const gateway = Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '1', '--admin-port', String(ADMIN_PORT), '--log-level', 'warn', '--access-log', 'off']), { stdout: 'inherit', stderr: 'inherit' })
const nginx = nginxBin ? Bun.spawn(pin(PROXY_CPU, [nginxBin, '-p', dir, '-c', writeNginxConf(dir)]), { stdout: 'inherit', stderr: 'inherit' }) : undefined

function writeNginxConf(base: string): string {
  for (const sub of ['tmp', 'logs']) mkdirSync(join(base, sub), { recursive: true })
  const conf = join(base, 'nginx.conf')
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${base}/nginx.pid;
error_log ${base}/logs/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  tcp_nodelay on;
  http2_max_concurrent_streams 1024;
  client_max_body_size 0;
  keepalive_requests 10000000; keepalive_timeout 300s;
  client_body_temp_path ${base}/tmp/body; proxy_temp_path ${base}/tmp/proxy;
  fastcgi_temp_path ${base}/tmp/fcgi; uwsgi_temp_path ${base}/tmp/uwsgi; scgi_temp_path ${base}/tmp/scgi;
  upstream grpc_up {
    server 127.0.0.1:${BACKEND_PORT};
    keepalive 256; keepalive_requests 10000000; keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${NGINX_PORT} http2 backlog=4096 reuseport;
    location / {
      grpc_pass grpc://grpc_up;
      grpc_read_timeout 300s; grpc_send_timeout 300s;
    }
  }
}
`,
  )
  return conf
}

/** One unary call through `port`: resolves with its grpc-status (undefined when the call failed). */
async function probe(port: number): Promise<string | undefined> {
  const session = http2.connect(`http://127.0.0.1:${port}`)
  session.on('error', () => {})
  try {
    return await new Promise<string | undefined>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/bench.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' })
      let status: string | undefined
      req.on('response', (h) => (status = h['grpc-status'] as string | undefined))
      req.on('trailers', (t) => (status = String(t['grpc-status'])))
      req.on('end', () => resolve(status))
      req.on('error', () => resolve(undefined))
      req.resume()
      req.end(message)
      setTimeout(() => resolve(undefined), 2000)
    })
  } finally {
    session.destroy()
  }
}

async function ready(port: number, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await probe(port)) === '0') return
    await Bun.sleep(50)
  }
  throw new Error(`${what}: no gRPC call ended with grpc-status 0`)
}

interface Unary {
  rps: number
  meanMs: number
  failed: number
  cpuUsPerCall: number
}

async function unary(port: number, pid: number | undefined): Promise<Unary> {
  const before = await cpuTicks(pid)
  const p = Bun.spawn(
    pin(LOAD_CPU, ['h2load', '-D', String(DURATION), '-c', String(CLIENTS), '-m', String(STREAMS_PER_CLIENT), '-d', join(dir, 'unary.bin'), '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}/bench.Echo/Unary`]),
    { stdout: 'pipe', stderr: 'pipe' },
  )
  const out = await new Response(p.stdout).text()
  await p.exited
  const after = await cpuTicks(pid)
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1])
  const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1])
  const ok2xx = Number(/status codes: (\d+) 2xx/.exec(out)?.[1])
  const meanMs = toMs(/time for request:\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1] ?? '')
  return { rps, meanMs, failed: done - ok2xx, cpuUsPerCall: pid === undefined ? NaN : ((after - before) * TICK_US) / Math.max(1, done) }
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim())
  if (!m) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

interface Streams {
  msgsPerSec: number
  cpuUsPerMsg: number
}

async function streams(port: number, pid: number | undefined): Promise<Streams> {
  const before = await cpuTicks(pid)
  const p = Bun.spawn(pin(LOAD_CPU, [process.execPath, join(import.meta.dir, 'grpc-stream-client.ts'), String(port), String(STREAMS), String(MESSAGES), String(SIZE)]), { stdout: 'pipe', stderr: 'inherit' })
  const out = await new Response(p.stdout).text()
  if ((await p.exited) !== 0) throw new Error(`stream run through port ${port} failed`)
  const after = await cpuTicks(pid)
  const { seconds, messages } = JSON.parse(out) as { seconds: number; messages: number }
  return { msgsPerSec: messages / seconds, cpuUsPerMsg: pid === undefined ? NaN : ((after - before) * TICK_US) / messages }
}

const targets: { name: string; port: number; pid: number | undefined }[] = [
  { name: 'direct', port: BACKEND_PORT, pid: undefined },
  { name: 'portico', port: GATEWAY_PORT, pid: gateway.pid },
]
if (nginx) targets.push({ name: 'nginx', port: NGINX_PORT, pid: nginx.pid })

try {
  await ready(BACKEND_PORT, 'backend')
  await ready(GATEWAY_PORT, 'portico')
  if (nginx) await ready(NGINX_PORT, 'nginx')
  const results = new Map<string, { unary: Unary[]; streams: Streams[] }>(targets.map((t) => [t.name, { unary: [], streams: [] }]))
  console.log(`unary: ${CLIENTS} connections x ${STREAMS_PER_CLIENT} concurrent calls, ${SIZE_UNARY} B messages, ${DURATION} s; streams: ${STREAMS} bidi calls x ${MESSAGES} messages of ${SIZE} B; ${REPS} reps`)
  for (let rep = 0; rep < REPS; rep++) {
    for (const t of targets) {
      const u = await unary(t.port, t.pid)
      const s = await streams(t.port, t.pid)
      results.get(t.name)!.unary.push(u)
      results.get(t.name)!.streams.push(s)
      console.log(`rep ${rep + 1} ${t.name.padEnd(8)} unary ${u.rps.toFixed(0).padStart(7)} calls/s  mean ${u.meanMs.toFixed(2)} ms  failed ${u.failed}  cpu ${u.cpuUsPerCall.toFixed(1)} µs/call | streams ${s.msgsPerSec.toFixed(0).padStart(7)} msg/s  cpu ${s.cpuUsPerMsg.toFixed(2)} µs/msg`)
    }
  }
  console.log('\nmedians')
  const med = (name: string) => {
    const r = results.get(name)!
    return {
      rps: median(r.unary.map((u) => u.rps)),
      mean: median(r.unary.map((u) => u.meanMs)),
      cpu: median(r.unary.map((u) => u.cpuUsPerCall)),
      msgs: median(r.streams.map((s) => s.msgsPerSec)),
      cpuMsg: median(r.streams.map((s) => s.cpuUsPerMsg)),
    }
  }
  for (const t of targets) {
    const m = med(t.name)
    console.log(`${t.name.padEnd(8)} unary ${m.rps.toFixed(0).padStart(7)} calls/s  mean ${m.mean.toFixed(2)} ms  cpu ${m.cpu.toFixed(1)} µs/call | streams ${m.msgs.toFixed(0).padStart(7)} msg/s  cpu ${m.cpuMsg.toFixed(2)} µs/msg`)
  }
  const p = med('portico')
  const d = med('direct')
  console.log(`ratio portico/direct: unary calls/s ${(p.rps / d.rps).toFixed(2)}x, stream msg/s ${(p.msgs / d.msgs).toFixed(2)}x`)
  if (nginx) {
    const n = med('nginx')
    console.log(`ratio portico/nginx:  unary calls/s ${(p.rps / n.rps).toFixed(2)}x, CPU per call ${(p.cpu / n.cpu).toFixed(2)}x | stream msg/s ${(p.msgs / n.msgs).toFixed(2)}x, CPU per message ${(p.cpuMsg / n.cpuMsg).toFixed(2)}x`)
  }
} finally {
  gateway.kill('SIGTERM')
  backend.kill('SIGTERM')
  nginx?.kill('SIGTERM')
  await Promise.all([gateway.exited, backend.exited, nginx?.exited])
}
