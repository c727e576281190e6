#!/usr/bin/env bun
/**
 * HTTP benchmark, run on demand (never in CI): small GET through Portico vs straight to the
 * upstream vs through nginx, in the same run, interleaved so drift on a shared machine hits
 * all alike.
 *
 *   npx bun bench/http.ts                 # 3 reps x 5 s, 64 connections
 *   REPS=5 DURATION=10 CONNECTIONS=128 npx bun bench/http.ts
 *   NGINX=0 npx bun bench/http.ts         # without the nginx target
 *   FIXED_RATE=8000 npx bun bench/http.ts # the fixed-rate phase at 8000 req/s (default: half the slower of portico and nginx; FIXED=0 skips it)
 *   PORT_BASE=36500 npx bun bench/http.ts # other ports (default 21500..21509), e.g. beside another run
 *   FETCH=1 npx bun bench/http.ts         # also Portico with fetch() upstream (PORTICO_UPSTREAM_CLIENT=fetch), the old path
 *   POLICIES=requestID,compression npx bun bench/http.ts   # each policy's cost (default: requestID; POLICIES= for none)
 *   POLICIES=compression COMPRESSION=Brotli NGINX=0 RELAY=0 npx bun bench/http.ts
 *   POLICIES=localRateLimit,globalRateLimit NGINX=0 RELAY=0 npx bun bench/http.ts   # rate limits (global: a redis-server of its own)
 *   POLICIES=apiKeyAuth,jwt NGINX=0 RELAY=0 npx bun bench/http.ts   # authentication (bench/auth-policies.ts)
 *
 * Per-policy cost: each policy in POLICIES gets a Gateway listener of its own on the same port
 * (Host: <name>.policy.bench) whose route carries only that policy, and is read against the
 * plain route (`portico`) with the same path and request headers, in the same process and run:
 *  - pipeline: not a policy but what every non-head-only one pays first: the rule leaves the
 *    front's direct path for the Bun.serve pipeline (an HTTPRoute RequestHeaderModifier filter);
 *  - requestID: a ClientTrafficPolicy headers.requestID Generate (head-only: the front's direct
 *    path runs it);
 *  - compression: a BackendTrafficPolicy compressor [{type: COMPRESSION (Gzip)}] on the route
 *    (response phase: the rule takes the Bun.serve pipeline), measured on the small GET (below
 *    the minimum size: the detour and the checks, nothing compressed) and on a 16 KiB JSON body
 *    (compressed), both with Accept-Encoding: gzip, deflate, br, zstd.
 *  - localRateLimit / globalRateLimit: a BackendTrafficPolicy rateLimit on the route, one rule
 *    per x-user (Distinct) set so high that nothing is limited: local counts in the shared
 *    table, global makes one Redis call per request (redis-server on the load cpu,
 *    --redis-url) that the front's direct path awaits. RL_TIMEOUT=2s sets the global rule's
 *    Redis deadline (default 50 ms): on a loaded machine calls that miss it fail open and skip
 *    Redis (logged), which flatters the number.
 * The bench refuses to run a policy that does not reach the data plane (or, for compression,
 * does not compress the 16 KiB body). POLICY=0 is the old spelling of POLICIES=.
 *
 * Also a Bun byte relay (bench/relay-floor.ts: no parsing, one upstream connection per client):
 * the runtime's floor, so that Portico's CPU per request splits into what Bun costs any proxy
 * and what Portico's HTTP work costs (RELAY=0 to leave it out).
 *
 * Fixed-rate latency: after the closed-loop (wrk) runs, portico, nginx and direct each take the
 * same offered rate from bench/open-loop.ts (open loop, latency from each request's intended
 * send time, so a stall is charged to every request it delays: wrk's closed-loop p99 is not),
 * interleaved, REPS x DURATION; the ratio printed is portico's p99 over nginx's at that rate.
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
import { AUTH_BENCHES } from './auth-policies.ts'
import { cpuTimes, gatewayManifests, median, parseWrk, pin, prefixRoute, TICK_US, waitFor, type WrkResult } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const PORT_BASE = Number(process.env.PORT_BASE ?? 21500)
const UPSTREAM_PORT = PORT_BASE
const GATEWAY_PORT = PORT_BASE + 1
const ADMIN_PORT = PORT_BASE + 2
const NGINX_PORT = PORT_BASE + 3
const FETCH_GATEWAY_PORT = PORT_BASE + 4
const FETCH_ADMIN_PORT = PORT_BASE + 5
const RELAY_PORT = PORT_BASE + 6
const NOMETRICS_GATEWAY_PORT = PORT_BASE + 7
const NOMETRICS_ADMIN_PORT = PORT_BASE + 8
/** METRICS=compare: a second gateway with --request-metrics off, same run (the metrics' cost). */
const COMPARE_METRICS = process.env.METRICS === 'compare'
/** Access log lines would go to this terminal: off unless ACCESS_LOG=on (its cost, measured apart). */
const ACCESS_LOG_ARGS = ['--access-log', process.env.ACCESS_LOG === 'on' ? 'on' : 'off']
const PROXY_CPU = 0
const LOAD_CPU = 1
const root = join(import.meta.dir, '..')
const nginxBin = process.env.NGINX === '0' ? null : (Bun.which('nginx') ?? Bun.which('nginx', { PATH: '/usr/sbin:/sbin' }))

if (!Bun.which('wrk')) {
  console.error('wrk not found: apt-get install -y wrk')
  process.exit(2)
}

/** /json16k: 16 KiB of JSON (application/json, Content-Length); anything else: the 20-byte hello (text/plain). */
const UPSTREAM_SCRIPT = `
const row = (i) => JSON.stringify({ id: i, name: 'item-' + i, tags: ['alpha', 'beta'], price: i * 1.25, ok: i % 2 === 0 })
let json = '['; for (let i = 0; json.length < 16384 - 200; i++) json += (i ? ',' : '') + row(i)
json = (json + ']').padEnd(16384, ' ')
Bun.serve({ port: ${UPSTREAM_PORT}, hostname: '127.0.0.1', fetch: (req) => req.url.endsWith('/json16k') ? new Response(json, { headers: { 'content-type': 'application/json' } }) : new Response('hello from upstream!') })`
const upstream = Bun.spawn(pin(LOAD_CPU, [process.execPath, '-e', UPSTREAM_SCRIPT]), { stdout: 'ignore', stderr: 'inherit' })
const dir = mkdtempSync(join(tmpdir(), 'portico-bench-'))
const BROWSER_AE = 'Accept-Encoding: gzip, deflate, br, zstd'
const COMPRESSION = process.env.COMPRESSION ?? 'Gzip'

/** One thing to measure on a policy's route, against the plain route with the same path and headers. */
interface PolicyCase {
  readonly label: string
  readonly path: string
  readonly headers: readonly string[]
}

/** A policy the bench can put on a route of its own (listener Host <name>.policy.bench, Gateway bench-<name>). */
interface PolicyBench {
  /** The policy object, attached to Gateway `gateway` or HTTPRoute `route` (none for a route filter). */
  readonly manifest: (gateway: string, route: string) => string
  /** HTTPRoute filters on the route's rule (YAML flow list). */
  readonly filters?: string
  /** Text in the admin /config once the policy is in the live snapshot. */
  readonly needle: string
  readonly cases: readonly PolicyCase[]
  /** A check of a live response on the policy's route (what the bench measures must really happen). */
  readonly verify?: (fetchCase: (c: PolicyCase) => Promise<Response>) => Promise<string | undefined>
}

const REDIS_PORT = PORT_BASE + 9
/** A rateLimit rule per x-user set too high to refuse anything: what counting costs. */
const rateLimitBench = (scope: 'local' | 'global'): PolicyBench => ({
  manifest: (_gateway, route) => `apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ratelimit-${scope} }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]
  rateLimit:
    ${scope}:
      rules: [{ clientSelectors: [{ headers: [{ name: x-user, type: Distinct }] }], limit: { requests: 1000000000, unit: Second } }]${scope === 'global' && process.env.RL_TIMEOUT ? `\n      timeout: ${process.env.RL_TIMEOUT}` : ''}
`,
  needle: `ratelimit-${scope}#rateLimit`,
  cases: [{ label: 'small', path: '/', headers: ['x-user: bench-user'] }],
  verify: async (fetchCase) => {
    const res = await fetchCase({ label: 'small', path: '/', headers: ['x-user: bench-user'] })
    await res.arrayBuffer()
    if (res.status !== 200) return `answered ${res.status}`
    if (scope === 'global') {
      const metrics = await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).text()
      if (!/portico_ratelimit_requests_total\{policy="[^"]*ratelimit-global#rateLimit",result="allowed",rule="0",scope="global"\} [1-9]/.test(metrics)) return 'no request counted in Redis'
    }
    return undefined
  },
})

const POLICY_BENCHES: Record<string, PolicyBench> = {
  // Not a policy: the price of leaving the front's direct path for the Bun.serve pipeline (an
  // HTTPRoute filter that adds one request header), what every non-head-only policy pays first.
  pipeline: {
    manifest: () => '',
    filters: '[{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-bench, value: "1" }] } }]',
    needle: '"x-bench"',
    // The 16 KiB case with the browser's Accept-Encoding: what compression json16k is read against.
    cases: [
      { label: 'small', path: '/', headers: [] },
      { label: 'json16k', path: '/json16k', headers: [BROWSER_AE] },
    ],
  },
  requestID: {
    manifest: (gateway) => `apiVersion: gateway.portico.dev/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: request-id }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: ${gateway} }]
  headers: { requestID: Generate }
`,
    needle: '"requestID"',
    cases: [{ label: 'small', path: '/', headers: [] }],
  },
  compression: {
    manifest: (_gateway, route) => `apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: compression }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]
  compressor: [{ type: ${COMPRESSION} }]
`,
    needle: '"compression"',
    cases: [
      { label: 'small', path: '/', headers: [BROWSER_AE] },
      { label: 'json16k', path: '/json16k', headers: [BROWSER_AE] },
    ],
    verify: async (fetchCase) => {
      const res = await fetchCase({ label: 'json16k', path: '/json16k', headers: [BROWSER_AE] })
      const bytes = (await res.arrayBuffer()).byteLength
      const encoding = res.headers.get('content-encoding')
      return encoding && bytes < 16384 ? undefined : `16 KiB JSON came back ${encoding ?? 'unencoded'}, ${bytes} bytes`
    },
  },
  ...AUTH_BENCHES,
  localRateLimit: rateLimitBench('local'),
  globalRateLimit: rateLimitBench('global'),
}

const POLICIES = (process.env.POLICY === '0' ? '' : (process.env.POLICIES ?? 'requestID')).split(',').map((p) => p.trim()).filter((p) => p !== '')
for (const p of POLICIES) {
  if (!POLICY_BENCHES[p]) {
    console.error(`unknown policy ${p} in POLICIES (known: ${Object.keys(POLICY_BENCHES).join(', ')})`)
    process.exit(2)
  }
}
const policyHost = (name: string) => `${name.toLowerCase()}.policy.bench`

/** Per policy: a Gateway with one listener for its Host on the same port, a route to the upstream, the policy. */
const policyManifests = (gatewayPort: number) =>
  POLICIES.map((name) => {
    const gateway = `bench-${name.toLowerCase()}`
    const route = `${gateway}-route`
    return `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: ${gateway} }
spec:
  gatewayClassName: bench
  listeners: [{ name: policy, protocol: HTTP, port: ${gatewayPort}, hostname: ${policyHost(name)} }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${route} }
spec:
  parentRefs: [{ name: ${gateway} }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: / } }], backendRefs: [{ name: upstream, port: 80 }]${POLICY_BENCHES[name]!.filters ? `, filters: ${POLICY_BENCHES[name]!.filters}` : ''} }]
${POLICY_BENCHES[name]!.manifest(gateway, route) ? `---\n${POLICY_BENCHES[name]!.manifest(gateway, route)}` : ''}`
  }).join('')
const manifest = (gatewayPort: number) => gatewayManifests(gatewayPort, UPSTREAM_PORT) + '---\n' + prefixRoute('upstream', '/') + policyManifests(gatewayPort)
writeFileSync(join(dir, 'bench.yaml'), manifest(GATEWAY_PORT))

// Redis for globalRateLimit, on the load cpu like the upstream (a shared service, not the proxy's CPU).
const redis = POLICIES.includes('globalRateLimit')
  ? Bun.spawn(pin(LOAD_CPU, ['redis-server', '--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']), { stdout: 'ignore', stderr: 'inherit' })
  : undefined
if (redis) await Bun.sleep(300)
const redisArgs = redis ? ['--redis-url', `redis://127.0.0.1:${REDIS_PORT}`] : []
const gateway = Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '1', '--admin-port', String(ADMIN_PORT), '--log-level', 'warn', ...ACCESS_LOG_ARGS, ...redisArgs]), { stdout: ACCESS_LOG_ARGS[1] === 'on' ? 'ignore' : 'inherit', stderr: 'inherit' })
const noMetricsDir = COMPARE_METRICS ? mkdtempSync(join(tmpdir(), 'portico-bench-nometrics-')) : undefined
if (noMetricsDir) writeFileSync(join(noMetricsDir, 'bench.yaml'), manifest(NOMETRICS_GATEWAY_PORT))
const noMetricsGateway = noMetricsDir
  ? Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', noMetricsDir, '--workers', '1', '--admin-port', String(NOMETRICS_ADMIN_PORT), '--log-level', 'warn', ...ACCESS_LOG_ARGS, '--request-metrics', 'off']), { stdout: ACCESS_LOG_ARGS[1] === 'on' ? 'ignore' : 'inherit', stderr: 'inherit' })
  : undefined
// The same gateway with fetch() as its upstream client: the path this bench measured before.
const fetchDir = process.env.FETCH === '1' ? mkdtempSync(join(tmpdir(), 'portico-bench-fetch-')) : undefined
if (fetchDir) writeFileSync(join(fetchDir, 'bench.yaml'), manifest(FETCH_GATEWAY_PORT))
const fetchGateway = fetchDir
  ? Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', fetchDir, '--workers', '1', '--admin-port', String(FETCH_ADMIN_PORT), '--log-level', 'warn', '--access-log', 'off']), {
      stdout: 'inherit',
      stderr: 'inherit',
      env: { ...process.env, PORTICO_UPSTREAM_CLIENT: 'fetch' },
    })
  : undefined
const relay = process.env.RELAY === '0' ? undefined : Bun.spawn(pin(PROXY_CPU, [process.execPath, join(import.meta.dir, 'relay-floor.ts'), String(RELAY_PORT), String(UPSTREAM_PORT)]), { stdout: 'inherit', stderr: 'inherit' })
const nginx = nginxBin ? Bun.spawn(pin(PROXY_CPU, [nginxBin, '-p', dir, '-c', writeNginxConf(dir)]), { stdout: 'inherit', stderr: 'inherit' }) : undefined

/**
 * Each policy target must really carry its policy: wait until the admin API's live config shows
 * it, then run its own check on a live response.
 */
async function waitForPolicies(): Promise<void> {
  for (const name of POLICIES) {
    const bench = POLICY_BENCHES[name]!
    let seen = false
    for (let i = 0; i < 100 && !seen; i++) {
      const res = await fetch(`http://127.0.0.1:${ADMIN_PORT}/config`).catch(() => undefined)
      const text = res?.ok ? await res.text() : ''
      seen = text.includes(bench.needle)
      if (!seen) await Bun.sleep(100)
    }
    // Thrown inside the try below, so that the processes started here are stopped.
    if (!seen) throw new Error(`the ${name} policy did not reach the data plane (is its translation in this build?); leave it out of POLICIES`)
    const problem = await bench.verify?.((c) =>
      fetch(`http://127.0.0.1:${GATEWAY_PORT}${c.path}`, { headers: headerInit(c.headers, policyHost(name)), decompress: false } as RequestInit),
    )
    if (problem) throw new Error(`the ${name} policy is configured but does not act: ${problem}`)
  }
}

function headerInit(lines: readonly string[], host: string): Record<string, string> {
  const out: Record<string, string> = { host }
  for (const line of lines) out[line.slice(0, line.indexOf(':')).trim()] = line.slice(line.indexOf(':') + 1).trim()
  return out
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

/** One wrk load: where, with which Host and extra request headers, whose CPU to count. */
interface Target {
  readonly name: string
  readonly port: number
  readonly pid?: number | undefined
  readonly host?: string
  readonly path?: string
  readonly headers?: readonly string[]
}

async function wrk(t: Target, countCpu = true): Promise<Result> {
  const pid = countCpu ? t.pid : undefined
  const before = await cpuTimes(pid)
  const headerArgs = [...(t.host ? [`Host: ${t.host}`] : []), ...(t.headers ?? [])].flatMap((h) => ['-H', h])
  const p = Bun.spawn(pin(LOAD_CPU, ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', ...headerArgs, `http://127.0.0.1:${t.port}${t.path ?? '/'}`]), { stdout: 'pipe' })
  const out = await new Response(p.stdout).text()
  await p.exited
  const after = await cpuTimes(pid)
  const user = after.user - before.user
  const ticks = user + after.system - before.system
  const result = parseWrk(out)
  return { ...result, cpuUsPerReq: (ticks * TICK_US) / result.requests, userUsPerReq: (user * TICK_US) / result.requests }
}

interface OpenLoopResult {
  readonly achieved: number
  readonly errors: number
  readonly unsent: number
  readonly p50: number
  readonly p99: number
  readonly p999: number
}

/** One open-loop run (bench/open-loop.ts, on the load cpu) at `rate` against a target. */
async function openLoop(t: Target, rate: number): Promise<OpenLoopResult> {
  const p = Bun.spawn(pin(LOAD_CPU, [process.execPath, join(import.meta.dir, 'open-loop.ts'), String(t.port), String(rate), String(DURATION), String(CONNECTIONS), t.path ?? '/', ...(t.host ? [t.host] : [])]), { stdout: 'pipe', stderr: 'inherit' })
  const out = await new Response(p.stdout).text()
  await p.exited
  return JSON.parse(out.trim().split('\n').at(-1)!) as OpenLoopResult
}

/** The same offered rate to each target, interleaved; p99 ratio portico/nginx from this run. */
async function fixedRate(rate: number, targets: readonly Target[]): Promise<void> {
  const runs = new Map<string, OpenLoopResult[]>(targets.map((t) => [t.name, []]))
  for (let r = 0; r < REPS; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!)
    for (const t of order) runs.get(t.name)!.push(await openLoop(t, rate))
  }
  console.log(`\nfixed rate ${rate} req/s (open loop, latency from the intended send time), ${CONNECTIONS} connections, ${REPS} reps x ${DURATION} s interleaved (medians; first second not counted)`)
  const width = Math.max(8, ...targets.map((t) => t.name.length))
  console.log(`${'target'.padEnd(width)}  achieved  p50 ms  p99 ms  p99.9 ms  errors  unsent`)
  const med = (name: string, k: keyof OpenLoopResult) => median(runs.get(name)!.map((x) => x[k]))
  for (const t of targets) {
    const xs = runs.get(t.name)!
    console.log(
      `${t.name.padEnd(width)}  ${med(t.name, 'achieved').toFixed(0).padStart(8)}  ${med(t.name, 'p50').toFixed(2).padStart(6)}  ${med(t.name, 'p99').toFixed(2).padStart(6)}  ${med(t.name, 'p999').toFixed(2).padStart(8)}  ${String(xs.reduce((a, x) => a + x.errors, 0)).padStart(6)}  ${String(xs.reduce((a, x) => a + x.unsent, 0)).padStart(6)}`,
    )
  }
  if (runs.has('nginx')) {
    const each = runs.get('portico')!.map((x, i) => (x.p99 / runs.get('nginx')![i]!.p99).toFixed(2)).join(', ')
    console.log(`fixed-rate p99 portico/nginx: ${(med('portico', 'p99') / med('nginx', 'p99')).toFixed(2)}x (per rep: ${each}), p50 ${(med('portico', 'p50') / med('nginx', 'p50')).toFixed(2)}x`)
  }
}

try {
  await waitFor(`http://127.0.0.1:${UPSTREAM_PORT}/`)
  await waitFor(`http://127.0.0.1:${ADMIN_PORT}/readyz`)
  await waitFor(`http://127.0.0.1:${GATEWAY_PORT}/`)
  if (nginx) await waitFor(`http://127.0.0.1:${NGINX_PORT}/`)
  if (fetchGateway) await waitFor(`http://127.0.0.1:${FETCH_GATEWAY_PORT}/`)
  if (noMetricsGateway) await waitFor(`http://127.0.0.1:${NOMETRICS_GATEWAY_PORT}/`)
  if (relay) await waitFor(`http://127.0.0.1:${RELAY_PORT}/`)
  await waitForPolicies()

  const targets: Target[] = [
    { name: 'direct', port: UPSTREAM_PORT },
    { name: 'portico', port: GATEWAY_PORT, pid: gateway.pid },
  ]
  // Each policy case against the plain route with the same path and headers (shared when equal).
  const pairs: { policy: string; label: string; with: Target; without: Target }[] = []
  for (const name of POLICIES) {
    for (const c of POLICY_BENCHES[name]!.cases) {
      const baseName = c.path === '/' && c.headers.length === 0 ? 'portico' : `portico ${c.label}${c.headers.length ? ' +h' : ''}`
      let without = targets.find((t) => t.name === baseName)
      if (!without) targets.push((without = { name: baseName, port: GATEWAY_PORT, pid: gateway.pid, path: c.path, headers: c.headers }))
      const withPolicy: Target = { name: `${name} ${c.label}`, port: GATEWAY_PORT, pid: gateway.pid, host: policyHost(name), path: c.path, headers: c.headers }
      targets.push(withPolicy)
      pairs.push({ policy: name, label: c.label, with: withPolicy, without })
    }
  }
  if (nginx) targets.push({ name: 'nginx', port: NGINX_PORT, pid: nginx.pid })
  if (fetchGateway) targets.push({ name: 'fetch', port: FETCH_GATEWAY_PORT, pid: fetchGateway.pid })
  if (noMetricsGateway) targets.push({ name: 'portico no-metrics', port: NOMETRICS_GATEWAY_PORT, pid: noMetricsGateway.pid })
  if (relay) targets.push({ name: 'relay', port: RELAY_PORT, pid: relay.pid })

  for (const t of targets) if (t.name !== 'direct') await wrk(t, false) // warm-up (JIT, pools)
  const runs = new Map<string, Result[]>(targets.map((t) => [t.name, []]))
  for (let r = 0; r < REPS; r++) {
    // Rotate the order every repetition so drift does not favour one target.
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!)
    for (const t of order) runs.get(t.name)!.push(await wrk(t))
  }
  const summary = (name: string) => {
    const xs = runs.get(name)!
    return {
      rps: median(xs.map((x) => x.rps)),
      p50: median(xs.map((x) => x.p50ms)),
      p99: median(xs.map((x) => x.p99ms)),
      errors: xs.reduce((a, x) => a + x.errors, 0),
      cpu: median(xs.map((x) => x.cpuUsPerReq)),
      user: median(xs.map((x) => x.userUsPerReq)),
    }
  }
  const d = summary('direct')
  const g = summary('portico')
  console.log(`small GET, wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${REPS} reps interleaved (medians); proxies 1 worker on cpu ${PROXY_CPU}, upstream + wrk on cpu ${LOAD_CPU}`)
  // CPU µs per request (user+system of the proxy process, softirq excluded) is the least noisy
  // number on a shared machine: it does not move when a neighbour steals the load core.
  // user vs kernel: loopback TCP costs the same for every proxy; what differs is the user part.
  const width = Math.max(8, ...targets.map((t) => t.name.length))
  console.log(`${'target'.padEnd(width)}    req/s   p50 ms  p99 ms  errors  proxy CPU µs/req (user)`)
  for (const t of targets) {
    const s = summary(t.name)
    const cpu = Number.isFinite(s.cpu) ? `${s.cpu.toFixed(1)} (${s.user.toFixed(1)})` : '-'
    console.log(`${t.name.padEnd(width)} ${s.rps.toFixed(0).padStart(8)}  ${s.p50.toFixed(2).padStart(6)}  ${s.p99.toFixed(2).padStart(6)}  ${String(s.errors).padStart(6)}  ${cpu.padStart(15)}`)
  }
  console.log(`ratio portico/direct: req/s ${(g.rps / d.rps).toFixed(2)}x, p99 ${(g.p99 / d.p99).toFixed(2)}x`)
  if (nginx) {
    const n = summary('nginx')
    console.log(`ratio portico/nginx:  req/s ${(g.rps / n.rps).toFixed(2)}x, p99 ${(g.p99 / n.p99).toFixed(2)}x, CPU per request ${(g.cpu / n.cpu).toFixed(2)}x`)
  }
  for (const pair of pairs) {
    const p = summary(pair.with.name)
    const b = summary(pair.without.name)
    console.log(
      `policy ${pair.policy} (${pair.label}) vs '${pair.without.name}': req/s ${(p.rps / b.rps).toFixed(2)}x, p99 ${(p.p99 / b.p99).toFixed(2)}x, CPU per request ${(p.cpu / b.cpu).toFixed(2)}x (${p.cpu - b.cpu >= 0 ? '+' : ''}${(p.cpu - b.cpu).toFixed(1)} µs, user ${p.user - b.user >= 0 ? '+' : ''}${(p.user - b.user).toFixed(1)} µs)`,
    )
  }
  if (relay) {
    const r = summary('relay')
    console.log(`Bun relay floor (no HTTP work): ${r.cpu.toFixed(1)} µs CPU/request (${r.user.toFixed(1)} user); Portico's HTTP work on top: ${(g.cpu - r.cpu).toFixed(1)} µs (${(g.user - r.user).toFixed(1)} user)`)
  }
  if (noMetricsGateway) {
    const m = summary('portico no-metrics')
    console.log(`request metrics on vs off: req/s ${(g.rps / m.rps).toFixed(3)}x, p99 ${(g.p99 / m.p99).toFixed(2)}x, CPU per request ${(g.cpu / m.cpu).toFixed(3)}x (${g.cpu - m.cpu >= 0 ? '+' : ''}${(g.cpu - m.cpu).toFixed(2)} µs, user ${g.user - m.user >= 0 ? '+' : ''}${(g.user - m.user).toFixed(2)} µs)`)
  }
  if (fetchGateway) {
    const f = summary('fetch')
    console.log(`ratio portico/fetch:  req/s ${(g.rps / f.rps).toFixed(2)}x, p99 ${(g.p99 / f.p99).toFixed(2)}x, CPU per request ${(g.cpu / f.cpu).toFixed(2)}x`)
  }
  if (process.env.FIXED !== '0') {
    const closedLoop = nginx ? Math.min(g.rps, summary('nginx').rps) : g.rps
    await fixedRate(Number(process.env.FIXED_RATE ?? Math.round(closedLoop / 2)), targets.filter((t) => t.name === 'direct' || t.name === 'portico' || t.name === 'nginx'))
  }
} finally {
  gateway.kill('SIGTERM')
  upstream.kill('SIGTERM')
  nginx?.kill('SIGTERM')
  fetchGateway?.kill('SIGTERM')
  noMetricsGateway?.kill('SIGTERM')
  relay?.kill('SIGTERM')
  redis?.kill('SIGTERM')
  await Promise.all([gateway.exited, upstream.exited, nginx?.exited, fetchGateway?.exited, noMetricsGateway?.exited, relay?.exited, redis?.exited])
}
