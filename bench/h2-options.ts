#!/usr/bin/env bun
/**
 * Where h2 CPU goes, and what each design could reach (issue 19), run on demand (never in CI).
 * Same run, interleaved, h2load -c16 -m10 over TLS against a small GET; every proxy pinned to cpu
 * 0, the upstream (nginx, 1 worker) and h2load on cpu 1. Prints CPU µs per request (user+sys of
 * the proxy process), which holds up on a loaded machine better than req/s.
 *
 *   npx bun bench/h2-options.ts                 # 3 reps x 5 s
 *   REPS=5 DURATION=10 BASE=22800 npx bun bench/h2-options.ts
 *
 *   portico           this checkout (src/main.ts, 1 worker): TLS front, h2c relay, inner Bun.serve pipeline
 *   nginx             1 worker, `ssl http2`, keep-alive upstream
 *   lean-relay        TLS front on Bun.listen + loopback h2c relay + Bun.serve whose handler forwards over raw HTTP/1.1 links
 *   lean-bun-serve    the same handler with Bun.serve terminating TLS and h2 itself (no front, no relay)
 *   js-h2-proxy       h2 framing + HPACK in JS on the Bun.listen TLS socket, streams forwarded over raw HTTP/1.1 links
 *   js-h2-hello       the same h2 layer answering from JS: the framing's own cost
 * The lean and js-h2 servers are prototypes (bench/h2-options/): no policies, no flow-control
 * accounting, no validation. They bound what a design can reach, they are not the design.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchGatewayClass, cpuTimes, localService, median, pin, TICK_US, waitFor } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const BASE = Number(process.env.BASE ?? 21700)
const UPSTREAM = BASE
const root = join(import.meta.dir, '..')
const PORTS = { portico: BASE + 1, nginx: BASE + 2, 'lean-relay': BASE + 3, 'lean-bun-serve': BASE + 4, 'js-h2-proxy': BASE + 5, 'js-h2-hello': BASE + 6 }
type Variant = keyof typeof PORTS

for (const tool of ['h2load', 'nginx', 'openssl']) {
  if (!Bun.which(tool)) {
    console.error(`${tool} not found (apt-get install -y nghttp2-client nginx openssl)`)
    process.exit(2)
  }
}

const dir = mkdtempSync(join(tmpdir(), 'portico-bench-h2-'))
const cert = join(dir, 'ec.crt')
const key = join(dir, 'ec.key')
const made = Bun.spawnSync(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test'], { stderr: 'pipe' })
if (made.exitCode !== 0) throw new Error(`openssl: ${made.stderr.toString()}`)

writeFileSync(
  join(dir, 'upstream.conf'),
  `worker_processes 1; daemon off; pid ${dir}/upstream.pid; error_log ${dir}/upstream.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:${UPSTREAM} reuseport; location / { return 200 "hello from upstream!"; } } }
`,
)
writeFileSync(
  join(dir, 'nginx.conf'),
  `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:${UPSTREAM}; keepalive 256; }
  server { listen 127.0.0.1:${PORTS.nginx} ssl http2; ssl_certificate ${cert}; ssl_certificate_key ${key};
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
)
const pem = async (path: string) => (await Bun.file(path).text()).trim().split('\n').map((l) => `    ${l}`).join('\n')
writeFileSync(
  join(dir, 'bench.yaml'),
  `${benchGatewayClass}---
apiVersion: v1
kind: Secret
metadata: { name: ec-cert }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${await pem(cert)}
  tls.key: |
${await pem(key)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners: [{ name: ec, protocol: HTTPS, port: ${PORTS.portico}, tls: { certificateRefs: [{ name: ec-cert }] } }]
---
${localService('upstream', UPSTREAM)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: upstream }
spec:
  parentRefs: [{ name: bench }]
  rules: [{ backendRefs: [{ name: upstream, port: 80 }] }]
`,
)

const bun = process.execPath
const proto = (file: string, port: number, mode: string) => Bun.spawn(pin(0, [bun, join(import.meta.dir, 'h2-options', file), String(port), String(UPSTREAM), mode, cert, key]), { stdout: 'ignore', stderr: 'inherit' })
const upstream = Bun.spawn(pin(1, ['nginx', '-c', join(dir, 'upstream.conf'), '-e', `${dir}/upstream.err`]), { stdout: 'ignore', stderr: 'inherit' })
const nginx = Bun.spawn(pin(0, ['nginx', '-c', join(dir, 'nginx.conf'), '-e', `${dir}/nginx.err`]), { stdout: 'ignore', stderr: 'inherit' })
const procs: Record<Variant, Bun.Subprocess> = {
  portico: Bun.spawn(pin(0, [bun, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '1', '--admin-port', String(BASE + 7), '--log-level', 'warn', '--access-log', 'off']), { cwd: root, stdout: 'ignore', stderr: 'inherit' }),
  nginx,
  'lean-relay': proto('lean-bun-serve.ts', PORTS['lean-relay'], 'relay'),
  'lean-bun-serve': proto('lean-bun-serve.ts', PORTS['lean-bun-serve'], 'direct'),
  'js-h2-proxy': proto('js-h2.ts', PORTS['js-h2-proxy'], 'proxy'),
  'js-h2-hello': proto('js-h2.ts', PORTS['js-h2-hello'], 'hello'),
}

async function h2load(port: number, seconds: number): Promise<{ rps: number; done: number }> {
  const p = Bun.spawn(pin(1, ['h2load', '-c16', '-m10', '-D', String(seconds), `https://127.0.0.1:${port}/`]), { stdout: 'pipe', stderr: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  return { rps: Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN), done: Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1] ?? NaN) }
}

async function measure(v: Variant): Promise<{ rps: number; cpuUs: number }> {
  await h2load(PORTS[v], 1) // warm-up: JIT, upstream links
  const before = await cpuTimes(procs[v].pid)
  const r = await h2load(PORTS[v], DURATION)
  const after = await cpuTimes(procs[v].pid)
  return { rps: r.rps, cpuUs: ((after.user + after.system - before.user - before.system) * TICK_US) / r.done }
}

try {
  await waitFor(`http://127.0.0.1:${UPSTREAM}/`)
  // Some variants speak only h2 (fetch would offer http/1.1): ready when one h2 request gets a 200.
  for (const v of Object.keys(PORTS) as Variant[]) {
    const deadline = Date.now() + 60_000
    for (;;) {
      const p = Bun.spawnSync(['h2load', '-n1', '-c1', `https://127.0.0.1:${PORTS[v]}/`], { stdout: 'pipe', stderr: 'pipe' })
      if (/status codes: 1 2xx/.test(p.stdout.toString())) break
      if (Date.now() > deadline) throw new Error(`${v} not ready`)
      await Bun.sleep(200)
    }
  }
  const variants = Object.keys(PORTS) as Variant[]
  const samples = Object.fromEntries(variants.map((v) => [v, [] as { rps: number; cpuUs: number }[]])) as Record<Variant, { rps: number; cpuUs: number }[]>
  for (let r = 0; r < REPS; r++) for (const v of r % 2 === 0 ? variants : [...variants].reverse()) samples[v].push(await measure(v))
  const nginxCpu = median(samples.nginx.map((s) => s.cpuUs))
  console.log(`h2 small GET, h2load -c16 -m10 over TLS, ${REPS} reps x ${DURATION}s interleaved (medians); proxies on cpu 0, upstream nginx + load on cpu 1`)
  console.log(`${'variant'.padEnd(16)} ${'req/s'.padStart(8)} ${'CPU µs/req'.padStart(11)}  vs nginx CPU`)
  for (const v of variants) {
    const cpu = median(samples[v].map((s) => s.cpuUs))
    console.log(`${v.padEnd(16)} ${median(samples[v].map((s) => s.rps)).toFixed(0).padStart(8)} ${cpu.toFixed(1).padStart(11)}  ${(cpu / nginxCpu).toFixed(2)}x`)
  }
} finally {
  for (const p of Object.values(procs)) p.kill(p === nginx ? 'SIGQUIT' : 'SIGTERM')
  upstream.kill('SIGQUIT')
  await Promise.all([...Object.values(procs).map((p) => p.exited), upstream.exited])
}
