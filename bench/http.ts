#!/usr/bin/env bun
/**
 * HTTP benchmark, run on demand (never in CI): small GET through Portico vs straight to the
 * upstream vs through nginx, in the same run, interleaved so drift on a shared machine hits
 * all alike.
 *
 *   npx bun bench/http.ts                 # 3 reps x 5 s, 64 connections
 *   REPS=5 DURATION=10 CONNECTIONS=128 npx bun bench/http.ts
 *   NGINX=0 npx bun bench/http.ts         # without the nginx target
 *   FETCH=1 npx bun bench/http.ts         # also Portico with fetch() upstream (PORTICO_UPSTREAM_CLIENT=fetch), the old path
 *   POLICY=0 npx bun bench/http.ts        # without the head-only policy target
 *
 * The `policy` target is the same gateway and route reached with Host: policy.bench, a listener
 * carrying a ClientTrafficPolicy with headers.requestID: Generate (a head-only policy: the
 * front's direct path runs it). Its cost is read against `portico` (same process, same route).
 *
 * Also a Bun byte relay (bench/relay-floor.ts: no parsing, one upstream connection per client):
 * the runtime's floor, so that Portico's CPU per request splits into what Bun costs any proxy
 * and what Portico's HTTP work costs (RELAY=0 to leave it out).
 *
 * Needs wrk (apt-get install wrk), and nginx for that target. The upstream is a Bun.serve
 * "hello" in its own process; Portico runs as a separate process from src/main.ts with one
 * worker (--workers 1), nginx with `worker_processes 1` and a keep-alive upstream pool. Layout
 * as in ../shared/bench: the proxies are pinned to cpu 0 (only one is loaded at a time), the
 * upstream and wrk to cpu 1 (taskset; unpinned when taskset is missing).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cpuTimes, gatewayManifests, median, parseWrk, pin, prefixRoute, TICK_US, waitFor, type WrkResult } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const UPSTREAM_PORT = 21500
const GATEWAY_PORT = 21501
const ADMIN_PORT = 21502
const NGINX_PORT = 21503
const FETCH_GATEWAY_PORT = 21504
const FETCH_ADMIN_PORT = 21505
const RELAY_PORT = 21506
const PROXY_CPU = 0
const LOAD_CPU = 1
const root = join(import.meta.dir, '..')
const nginxBin = process.env.NGINX === '0' ? null : (Bun.which('nginx') ?? Bun.which('nginx', { PATH: '/usr/sbin:/sbin' }))

if (!Bun.which('wrk')) {
  console.error('wrk not found: apt-get install -y wrk')
  process.exit(2)
}

const upstream = Bun.spawn(pin(LOAD_CPU, [process.execPath, '-e', `Bun.serve({ port: ${UPSTREAM_PORT}, hostname: '127.0.0.1', fetch: () => new Response('hello from upstream!') })`]), { stdout: 'ignore', stderr: 'inherit' })
const dir = mkdtempSync(join(tmpdir(), 'portico-bench-'))
const POLICY = process.env.POLICY !== '0'
const POLICY_HOST = 'policy.bench'
/** A second listener on the same port for POLICY_HOST, with a head-only ClientTrafficPolicy on it. */
const policyManifests = (gatewayPort: number) => `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench-policy }
spec:
  gatewayClassName: bench
  listeners: [{ name: policy, protocol: HTTP, port: ${gatewayPort}, hostname: ${POLICY_HOST} }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: policy-route }
spec:
  parentRefs: [{ name: bench-policy }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: / } }], backendRefs: [{ name: upstream, port: 80 }] }]
---
apiVersion: gateway.portico.dev/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: request-id }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: bench-policy }]
  headers: { requestID: Generate }
`
const manifest = (gatewayPort: number) => gatewayManifests(gatewayPort, UPSTREAM_PORT) + '---\n' + prefixRoute('upstream', '/') + (POLICY ? policyManifests(gatewayPort) : '')
writeFileSync(join(dir, 'bench.yaml'), manifest(GATEWAY_PORT))

const gateway = Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '1', '--admin-port', String(ADMIN_PORT), '--log-level', 'warn']), { stdout: 'inherit', stderr: 'inherit' })
// The same gateway with fetch() as its upstream client: the path this bench measured before.
const fetchDir = process.env.FETCH === '1' ? mkdtempSync(join(tmpdir(), 'portico-bench-fetch-')) : undefined
if (fetchDir) writeFileSync(join(fetchDir, 'bench.yaml'), manifest(FETCH_GATEWAY_PORT))
const fetchGateway = fetchDir
  ? Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', fetchDir, '--workers', '1', '--admin-port', String(FETCH_ADMIN_PORT), '--log-level', 'warn']), {
      stdout: 'inherit',
      stderr: 'inherit',
      env: { ...process.env, PORTICO_UPSTREAM_CLIENT: 'fetch' },
    })
  : undefined
const relay = process.env.RELAY === '0' ? undefined : Bun.spawn(pin(PROXY_CPU, [process.execPath, join(import.meta.dir, 'relay-floor.ts'), String(RELAY_PORT), String(UPSTREAM_PORT)]), { stdout: 'inherit', stderr: 'inherit' })
const nginx = nginxBin ? Bun.spawn(pin(PROXY_CPU, [nginxBin, '-p', dir, '-c', writeNginxConf(dir)]), { stdout: 'inherit', stderr: 'inherit' }) : undefined

/**
 * The policy target must really carry its policy: a request to POLICY_HOST with our own
 * X-Request-Id must reach the upstream with another one. The upstream does not echo, so this
 * asks the admin API for the live config and looks for the policy in it.
 */
async function waitForPolicy(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`http://127.0.0.1:${ADMIN_PORT}/config`).catch(() => undefined)
    const text = res?.ok ? await res.text() : ''
    if (text.includes('"requestID"')) return
    await Bun.sleep(100)
  }
  // Thrown inside the try below, so that the processes started here are stopped.
  throw new Error('the ClientTrafficPolicy did not reach the data plane (is its translation in this build?); run with POLICY=0')
}

/** nginx as a plain reverse proxy, as in ../shared/bench/run.sh: 1 worker, upstream keepalive pool, no logs. */
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
  keepalive_requests 10000000; keepalive_timeout 300s;
  client_body_temp_path ${base}/tmp/body; proxy_temp_path ${base}/tmp/proxy;
  fastcgi_temp_path ${base}/tmp/fcgi; uwsgi_temp_path ${base}/tmp/uwsgi; scgi_temp_path ${base}/tmp/scgi;
  upstream up_http {
    server 127.0.0.1:${UPSTREAM_PORT};
    keepalive 256; keepalive_requests 10000000; keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${NGINX_PORT} backlog=4096 reuseport;
    location / {
      proxy_pass http://up_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_max_temp_file_size 0;
    }
  }
}
`,
  )
  return conf
}

interface Result extends WrkResult { cpuUsPerReq: number; userUsPerReq: number }

async function wrk(port: number, proxyPid?: number, host?: string): Promise<Result> {
  const before = await cpuTimes(proxyPid)
  const p = Bun.spawn(pin(LOAD_CPU, ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', ...(host ? ['-H', `Host: ${host}`] : []), `http://127.0.0.1:${port}/`]), { stdout: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  const after = await cpuTimes(proxyPid)
  const user = after.user - before.user
  const ticks = user + after.system - before.system
  const result = parseWrk(out)
  return { ...result, cpuUsPerReq: (ticks * TICK_US) / result.requests, userUsPerReq: (user * TICK_US) / result.requests }
}


type Target = 'direct' | 'portico' | 'policy' | 'nginx' | 'fetch' | 'relay'
const PORTS: Record<Target, number> = { direct: UPSTREAM_PORT, portico: GATEWAY_PORT, policy: GATEWAY_PORT, nginx: NGINX_PORT, fetch: FETCH_GATEWAY_PORT, relay: RELAY_PORT }
const HOSTS: Partial<Record<Target, string>> = { policy: POLICY_HOST }

try {
  await waitFor(`http://127.0.0.1:${UPSTREAM_PORT}/`)
  await waitFor(`http://127.0.0.1:${ADMIN_PORT}/readyz`)
  await waitFor(`http://127.0.0.1:${GATEWAY_PORT}/`)
  if (nginx) await waitFor(`http://127.0.0.1:${NGINX_PORT}/`)
  if (fetchGateway) await waitFor(`http://127.0.0.1:${FETCH_GATEWAY_PORT}/`)
  if (relay) await waitFor(`http://127.0.0.1:${RELAY_PORT}/`)
  if (POLICY) await waitForPolicy()
  const targets: Target[] = ['direct', 'portico', ...(POLICY ? (['policy'] as const) : []), ...(nginx ? (['nginx'] as const) : []), ...(fetchGateway ? (['fetch'] as const) : []), ...(relay ? (['relay'] as const) : [])]
  const PIDS: Record<Target, number | undefined> = { direct: undefined, portico: gateway.pid, policy: gateway.pid, nginx: nginx?.pid, fetch: fetchGateway?.pid, relay: relay?.pid }
  for (const t of targets) if (t !== 'direct') await wrk(PORTS[t], undefined, HOSTS[t]) // warm-up (JIT, pools)
  const runs: Record<Target, Result[]> = { direct: [], portico: [], policy: [], nginx: [], fetch: [], relay: [] }
  for (let r = 0; r < REPS; r++) {
    // Rotate the order every repetition so drift does not favour one target.
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!)
    for (const t of order) runs[t].push(await wrk(PORTS[t], PIDS[t], HOSTS[t]))
  }
  const summary = (t: Target) => ({
    rps: median(runs[t].map((x) => x.rps)),
    p50: median(runs[t].map((x) => x.p50ms)),
    p99: median(runs[t].map((x) => x.p99ms)),
    errors: runs[t].reduce((a, x) => a + x.errors, 0),
    cpu: median(runs[t].map((x) => x.cpuUsPerReq)),
    user: median(runs[t].map((x) => x.userUsPerReq)),
  })
  const d = summary('direct')
  const g = summary('portico')
  console.log(`small GET, wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${REPS} reps interleaved (medians); proxies 1 worker on cpu ${PROXY_CPU}, upstream + wrk on cpu ${LOAD_CPU}`)
  // CPU µs per request (user+system of the proxy process, softirq excluded) is the least noisy
  // number on a shared machine: it does not move when a neighbour steals the load core.
  // user vs kernel: loopback TCP costs the same for every proxy; what differs is the user part.
  console.log('target   req/s     p50 ms  p99 ms  errors  proxy CPU µs/req (user)')
  for (const t of targets) {
    const s = summary(t)
    const cpu = Number.isFinite(s.cpu) ? `${s.cpu.toFixed(1)} (${s.user.toFixed(1)})` : '-'
    console.log(`${t.padEnd(8)} ${s.rps.toFixed(0).padStart(8)}  ${s.p50.toFixed(2).padStart(6)}  ${s.p99.toFixed(2).padStart(6)}  ${String(s.errors).padStart(6)}  ${cpu.padStart(15)}`)
  }
  console.log(`ratio portico/direct: req/s ${(g.rps / d.rps).toFixed(2)}x, p99 ${(g.p99 / d.p99).toFixed(2)}x`)
  if (nginx) {
    const n = summary('nginx')
    console.log(`ratio portico/nginx:  req/s ${(g.rps / n.rps).toFixed(2)}x, p99 ${(g.p99 / n.p99).toFixed(2)}x, CPU per request ${(g.cpu / n.cpu).toFixed(2)}x`)
  }
  if (POLICY) {
    const p = summary('policy')
    console.log(`ratio policy/portico (requestID Generate, head-only): req/s ${(p.rps / g.rps).toFixed(2)}x, p99 ${(p.p99 / g.p99).toFixed(2)}x, CPU per request ${(p.cpu / g.cpu).toFixed(2)}x`)
  }
  if (relay) {
    const r = summary('relay')
    console.log(`Bun relay floor (no HTTP work): ${r.cpu.toFixed(1)} µs CPU/request (${r.user.toFixed(1)} user); Portico's HTTP work on top: ${(g.cpu - r.cpu).toFixed(1)} µs (${(g.user - r.user).toFixed(1)} user)`)
  }
  if (fetchGateway) {
    const f = summary('fetch')
    console.log(`ratio portico/fetch:  req/s ${(g.rps / f.rps).toFixed(2)}x, p99 ${(g.p99 / f.p99).toFixed(2)}x, CPU per request ${(g.cpu / f.cpu).toFixed(2)}x`)
  }
} finally {
  gateway.kill('SIGTERM')
  upstream.kill('SIGTERM')
  nginx?.kill('SIGTERM')
  fetchGateway?.kill('SIGTERM')
  relay?.kill('SIGTERM')
  await Promise.all([gateway.exited, upstream.exited, nginx?.exited, fetchGateway?.exited, relay?.exited])
}
