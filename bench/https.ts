#!/usr/bin/env bun
/**
 * HTTPS benchmark against nginx, run on demand (never in CI). Same run, interleaved, so drift on
 * a shared machine hits both alike; what counts is the ratio Portico/nginx.
 *
 *   npx bun bench/https.ts                      # 3 reps x 5 s
 *   REPS=5 DURATION=10 BASE=22600 npx bun bench/https.ts
 *   PORTICO_DIR=/path/to/other/checkout npx bun bench/https.ts   # measure another build (e.g. an older design)
 *   WORKERS=2 npx bun bench/https.ts            # Portico --workers 2 vs nginx worker_processes 2, both unpinned
 *
 * Measures, for Portico (src/main.ts, 1 worker) and nginx (1 worker, `listen ... ssl http2`,
 * keep-alive upstream), both pinned to cpu 0, load and upstream (nginx, 1 worker) on cpu 1:
 *   - h1:    HTTP/1.1 over TLS 1.3, small GET, wrk -t1 -c64 keep-alive (req/s, p99)
 *   - h2:    HTTP/2, h2load -c16 -m10 (req/s)
 *   - hs-ec / hs-rsa: new TLS connections per second, one request each (wrk, Connection: close),
 *            ECDSA P-256 vs RSA 2048 certificate, full handshakes (wrk keeps no session)
 *   - resume: TLS 1.2 session resumption, openssl s_time -reuse (connections/s, one client)
 * and CPU µs per request of the proxy (user / system) for h1: where the time goes.
 * Needs wrk, h2load (nghttp2-client), nginx, openssl.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchGatewayClass, cpuTimes, localService, median, parseWrk, pin, TICK_US, waitFor } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const BASE = Number(process.env.BASE ?? 21600)
const UPSTREAM_PORT = BASE
const PORTICO = { ec: BASE + 1, rsa: BASE + 2 }
const NGINX = { ec: BASE + 3, rsa: BASE + 4 }
const ADMIN_PORT = BASE + 5
const PROXY_CPU = 0
const LOAD_CPU = 1
const root = process.env.PORTICO_DIR ?? join(import.meta.dir, '..')
/** Workers of each proxy; above 1 the proxies are not pinned (they share both cores with the load). */
const WORKERS = Number(process.env.WORKERS ?? 1)
const pinProxy = (cmd: string[]) => (WORKERS > 1 ? cmd : pin(PROXY_CPU, cmd))

for (const tool of ['wrk', 'h2load', 'nginx', 'openssl']) {
  if (!Bun.which(tool)) {
    console.error(`${tool} not found (apt-get install -y wrk nghttp2-client nginx openssl)`)
    process.exit(2)
  }
}

const dir = mkdtempSync(join(tmpdir(), 'portico-bench-https-'))
function certificate(name: string, keyArgs: string[]): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  const r = Bun.spawnSync(['openssl', 'req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test'], { stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr.toString()}`)
  return { cert, key }
}
const ec = certificate('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'])
const rsa = certificate('rsa', ['-newkey', 'rsa:2048'])

// ---- upstream: nginx, 1 worker, on the load core ----
const upstreamConf = join(dir, 'upstream.conf')
writeFileSync(
  upstreamConf,
  `worker_processes 1; daemon off; pid ${dir}/upstream.pid; error_log ${dir}/upstream.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:${UPSTREAM_PORT} reuseport; location / { return 200 "hello from upstream!"; } } }
`,
)
// ---- nginx as the proxy: the same TLS policy as Portico's default ----
const nginxConf = join(dir, 'nginx.conf')
const serverBlock = (port: number, c: { cert: string; key: string }) => `
  server { listen 127.0.0.1:${port} ssl http2 reuseport; ssl_certificate ${c.cert}; ssl_certificate_key ${c.key};
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }`
writeFileSync(
  nginxConf,
  `worker_processes ${WORKERS}; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on;
  ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
  upstream up { server 127.0.0.1:${UPSTREAM_PORT}; keepalive 256; }
  ${serverBlock(NGINX.ec, ec)}${serverBlock(NGINX.rsa, rsa)} }
`,
)

const indent = (pem: string) => pem.trim().split('\n').map((l) => `    ${l}`).join('\n')
const secret = (name: string, c: { cert: string; key: string }) => `apiVersion: v1
kind: Secret
metadata: { name: ${name} }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(readFileSync(c.cert, 'utf8'))}
  tls.key: |
${indent(readFileSync(c.key, 'utf8'))}
`
writeFileSync(
  join(dir, 'bench.yaml'),
  `${benchGatewayClass}---
${secret('ec-cert', ec)}---
${secret('rsa-cert', rsa)}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners:
    - { name: ec, protocol: HTTPS, port: ${PORTICO.ec}, tls: { certificateRefs: [{ name: ec-cert }] } }
    - { name: rsa, protocol: HTTPS, port: ${PORTICO.rsa}, tls: { certificateRefs: [{ name: rsa-cert }] } }
---
${localService('upstream', UPSTREAM_PORT)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: upstream }
spec:
  parentRefs: [{ name: bench }]
  rules: [{ backendRefs: [{ name: upstream, port: 80 }] }]
`,
)

const upstream = Bun.spawn(pin(LOAD_CPU, ['nginx', '-c', upstreamConf, '-e', `${dir}/upstream.err`]), { stdout: 'ignore', stderr: 'inherit' })
const nginx = Bun.spawn(pinProxy(['nginx', '-c', nginxConf, '-e', `${dir}/nginx.err`]), { stdout: 'ignore', stderr: 'inherit' })
const gateway = Bun.spawn(pinProxy([process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', String(WORKERS), '--admin-port', String(ADMIN_PORT), '--log-level', 'warn', '--access-log', 'off']), {
  cwd: root,
  stdout: 'inherit',
  stderr: 'inherit',
})

type Target = 'portico' | 'nginx'
const PORTS: Record<Target, { ec: number; rsa: number }> = { portico: PORTICO, nginx: NGINX }
const PIDS: Record<Target, () => number> = { portico: () => gateway.pid, nginx: () => nginx.pid }

async function run(cmd: string[]): Promise<string> {
  const p = Bun.spawn(pin(LOAD_CPU, cmd), { stdout: 'pipe', stderr: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  return out
}

interface Sample {
  h1: number
  h1p99: number
  h1UserUs: number
  h1SysUs: number
  h2: number
  h2CpuUs: number
  hsEc: number
  hsRsa: number
  resume: number
}

async function measure(t: Target): Promise<Sample> {
  const url = (port: number) => `https://127.0.0.1:${port}/`
  const ports = PORTS[t]
  const before = await cpuTimes(PIDS[t]())
  const h1 = parseWrk(await run(['wrk', '-t1', '-c64', `-d${DURATION}s`, '--latency', url(ports.ec)]))
  const after = await cpuTimes(PIDS[t]())
  const h2out = await run(['h2load', '-c16', '-m10', '-D', String(DURATION), url(ports.ec)])
  const afterH2 = await cpuTimes(PIDS[t]())
  const h2 = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(h2out)?.[1] ?? NaN)
  const h2Requests = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(h2out)?.[1] ?? NaN)
  const hs = async (port: number) => parseWrk(await run(['wrk', '-t1', '-c16', `-d${Math.max(2, Math.round(DURATION / 2))}s`, '-H', 'Connection: close', url(port)])).rps
  const hsEc = await hs(ports.ec)
  const hsRsa = await hs(ports.rsa)
  const stime = await run(['openssl', 's_time', '-connect', `127.0.0.1:${ports.ec}`, '-reuse', '-tls1_2', '-time', String(Math.max(2, Math.round(DURATION / 2)))])
  const resume = Number(/([\d.]+) connections\/user sec/.exec(stime)?.[1] ?? NaN)
  return {
    h1: h1.rps,
    h1p99: h1.p99ms,
    h1UserUs: ((after.user - before.user) * TICK_US) / h1.requests,
    h1SysUs: ((after.system - before.system) * TICK_US) / h1.requests,
    h2,
    h2CpuUs: ((afterH2.user + afterH2.system - after.user - after.system) * TICK_US) / h2Requests,
    hsEc,
    hsRsa,
    resume,
  }
}

try {
  const insecure = { tls: { rejectUnauthorized: false } } as RequestInit
  await waitFor(`http://127.0.0.1:${UPSTREAM_PORT}/`)
  await waitFor(`https://127.0.0.1:${NGINX.ec}/`, 100, insecure)
  await waitFor(`http://127.0.0.1:${ADMIN_PORT}/readyz`)
  await waitFor(`https://127.0.0.1:${PORTICO.ec}/`, 100, insecure)
  await run(['wrk', '-t1', '-c64', '-d2s', `https://127.0.0.1:${PORTICO.ec}/`]) // warm-up (JIT, pools)
  const targets: Target[] = ['portico', 'nginx']
  const samples: Record<Target, Sample[]> = { portico: [], nginx: [] }
  for (let r = 0; r < REPS; r++) {
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) samples[t].push(await measure(t))
  }
  const m = (t: Target, k: keyof Sample) => median(samples[t].map((s) => s[k]))
  const layout = WORKERS > 1 ? `proxies ${WORKERS} workers unpinned` : `proxies 1 worker on cpu ${PROXY_CPU}`
  console.log(`HTTPS vs nginx ${REPS} reps x ${DURATION}s interleaved (medians); ${layout}, upstream nginx + load on cpu ${LOAD_CPU}`)
  const rows: [string, keyof Sample, boolean][] = [
    ['h1 TLS1.3 wrk -c64 req/s', 'h1', true],
    ['h1 p99 ms', 'h1p99', false],
    ['h1 CPU user µs/req', 'h1UserUs', false],
    ['h1 CPU sys µs/req', 'h1SysUs', false],
    ['h2 h2load -c16 -m10 req/s', 'h2', true],
    ['h2 CPU µs/req (user+sys)', 'h2CpuUs', false],
    ['new TLS conn/s ECDSA P-256', 'hsEc', true],
    ['new TLS conn/s RSA 2048', 'hsRsa', true],
    ['resumed TLS1.2 conn/s (s_time)', 'resume', true],
  ]
  console.log(`${'metric'.padEnd(32)} ${'portico'.padStart(9)} ${'nginx'.padStart(9)}  ratio`)
  for (const [label, key, higherBetter] of rows) {
    const p = m('portico', key)
    const n = m('nginx', key)
    console.log(`${label.padEnd(32)} ${p.toFixed(/Us$/.test(key) || key === 'h1p99' ? 2 : 0).padStart(9)} ${n.toFixed(/Us$/.test(key) || key === 'h1p99' ? 2 : 0).padStart(9)}  ${(p / n).toFixed(2)}x${higherBetter ? '' : ' (lower is better)'}`)
  }
} finally {
  gateway.kill('SIGTERM')
  nginx.kill('SIGQUIT')
  upstream.kill('SIGQUIT')
  await Promise.all([gateway.exited, nginx.exited, upstream.exited])
}
