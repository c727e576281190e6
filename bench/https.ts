#!/usr/bin/env bun
/**
 * HTTPS benchmark, run on demand (never in CI): small GET over TLS through Portico vs straight
 * to an HTTPS upstream, same run, interleaved so drift on a shared machine hits both alike.
 *
 *   npx bun bench/https.ts                 # 3 reps x 5 s, 64 connections (keep-alive)
 *   REPS=5 DURATION=10 CONNECTIONS=128 npx bun bench/https.ts
 *
 * Needs wrk and openssl. The upstream is one Bun.serve "hello" process with an HTTPS port (the
 * direct target) and a plain HTTP port (Portico's backend: TLS terminated at the edge, as
 * usual). Portico runs from src/main.ts with one worker and an HTTPS listener whose certificate
 * comes from a kubernetes.io/tls Secret. Proxy on cpu 0, upstream and wrk on cpu 1 (taskset).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchGatewayClass, localService, median, pin, waitFor, wrk, type WrkResult } from './lib.ts'

const REPS = Number(process.env.REPS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const UPSTREAM_HTTP_PORT = 21600
const UPSTREAM_HTTPS_PORT = 21601
const GATEWAY_PORT = 21602
const ADMIN_PORT = 21603
const PROXY_CPU = 0
const LOAD_CPU = 1
const root = join(import.meta.dir, '..')

for (const tool of ['wrk', 'openssl']) {
  if (!Bun.which(tool)) {
    console.error(`${tool} not found (apt-get install -y ${tool})`)
    process.exit(2)
  }
}

const dir = mkdtempSync(join(tmpdir(), 'portico-bench-https-'))
const openssl = Bun.spawnSync(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test'], { stderr: 'pipe' })
if (openssl.exitCode !== 0) throw new Error(`openssl: ${openssl.stderr.toString()}`)
const certPem = readFileSync(join(dir, 'cert.pem'), 'utf8')
const keyPem = readFileSync(join(dir, 'key.pem'), 'utf8')

const upstreamScript = `
const tls = { cert: await Bun.file(${JSON.stringify(join(dir, 'cert.pem'))}).text(), key: await Bun.file(${JSON.stringify(join(dir, 'key.pem'))}).text() }
const fetch = () => new Response('hello from upstream!')
Bun.serve({ port: ${UPSTREAM_HTTP_PORT}, hostname: '127.0.0.1', fetch })
Bun.serve({ port: ${UPSTREAM_HTTPS_PORT}, hostname: '127.0.0.1', tls, fetch })
`
const upstream = Bun.spawn(pin(LOAD_CPU, [process.execPath, '-e', upstreamScript]), { stdout: 'ignore', stderr: 'inherit' })

const indent = (pem: string) => pem.trim().split('\n').map((l) => `    ${l}`).join('\n')
writeFileSync(
  join(dir, 'bench.yaml'),
  `${benchGatewayClass}---
apiVersion: v1
kind: Secret
metadata: { name: bench-cert }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(certPem)}
  tls.key: |
${indent(keyPem)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: bench }
spec:
  gatewayClassName: bench
  listeners:
    - name: https
      protocol: HTTPS
      port: ${GATEWAY_PORT}
      tls: { certificateRefs: [{ name: bench-cert }] }
---
${localService('upstream', UPSTREAM_HTTP_PORT)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: upstream }
spec:
  parentRefs: [{ name: bench }]
  rules: [{ backendRefs: [{ name: upstream, port: 80 }] }]
`,
)
const gateway = Bun.spawn(pin(PROXY_CPU, [process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '1', '--admin-port', String(ADMIN_PORT), '--log-level', 'warn']), { stdout: 'inherit', stderr: 'inherit' })

const insecure = { tls: { rejectUnauthorized: false } } as RequestInit
const wrkTo = (port: number) => wrk(`https://127.0.0.1:${port}/`, { connections: CONNECTIONS, seconds: DURATION, cmdPrefix: pin(LOAD_CPU, []) })

type Target = 'direct' | 'portico'
const PORTS: Record<Target, number> = { direct: UPSTREAM_HTTPS_PORT, portico: GATEWAY_PORT }

try {
  await waitFor(`https://127.0.0.1:${UPSTREAM_HTTPS_PORT}/`, 100, insecure)
  await waitFor(`http://127.0.0.1:${ADMIN_PORT}/readyz`)
  await waitFor(`https://127.0.0.1:${GATEWAY_PORT}/`, 100, insecure)
  await wrkTo(GATEWAY_PORT) // warm-up (JIT, pools)
  const targets: Target[] = ['direct', 'portico']
  const runs: Record<Target, WrkResult[]> = { direct: [], portico: [] }
  for (let r = 0; r < REPS; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse()
    for (const t of order) runs[t].push(await wrkTo(PORTS[t]))
  }
  const summary = (t: Target) => ({
    rps: median(runs[t].map((x) => x.rps)),
    p50: median(runs[t].map((x) => x.p50ms)),
    p99: median(runs[t].map((x) => x.p99ms)),
    errors: runs[t].reduce((a, x) => a + x.errors, 0),
  })
  console.log(`HTTPS small GET, wrk -t1 -c${CONNECTIONS} -d${DURATION}s (keep-alive), ${REPS} reps interleaved (medians); Portico 1 worker on cpu ${PROXY_CPU}, upstream + wrk on cpu ${LOAD_CPU}`)
  console.log('target   req/s     p50 ms  p99 ms  errors')
  for (const t of targets) {
    const s = summary(t)
    console.log(`${t.padEnd(8)} ${s.rps.toFixed(0).padStart(8)}  ${s.p50.toFixed(2).padStart(6)}  ${s.p99.toFixed(2).padStart(6)}  ${s.errors}`)
  }
  const d = summary('direct')
  const g = summary('portico')
  console.log(`ratio portico/direct: req/s ${(g.rps / d.rps).toFixed(2)}x, p99 ${(g.p99 / d.p99).toFixed(2)}x`)
} finally {
  gateway.kill('SIGTERM')
  upstream.kill('SIGTERM')
  await Promise.all([gateway.exited, upstream.exited])
}
