#!/usr/bin/env bun
/**
 * CPU profile of the gateway's HTTP hot path under wrk load (run on demand, never in CI).
 *
 *   npx bun bench/profile-http.ts            # 10 s of wrk -c64 against a small GET
 *   DURATION=20 OUT=/tmp/prof npx bun bench/profile-http.ts
 *   PERF=1 npx bun bench/profile-http.ts     # also `perf record` the gateway (native + kernel time)
 *   H2=1 npx bun bench/profile-http.ts       # h2c prior knowledge, h2load -c16 -m10: the h2 tunnel to the inner Bun.serve
 *
 * The gateway runs with Bun's --cpu-prof and --cpu-prof-md, pinned to cpu 0; the upstream (a
 * Bun.serve hello) and wrk share cpu 1, so the profile shows the gateway alone. Writes a
 * .cpuprofile (Chrome DevTools) and a grep-friendly .md into OUT.
 */
import { mkdtempSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gatewayManifests, pin, prefixRoute, waitFor } from './lib.ts'

const DURATION = Number(process.env.DURATION ?? 10)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const OUT = process.env.OUT ?? mkdtempSync(join(tmpdir(), 'portico-prof-'))
const UPSTREAM_PORT = 21900
const GATEWAY_PORT = 21901
const ADMIN_PORT = 21902
const root = join(import.meta.dir, '..')

const upstream = Bun.spawn(pin(1, [process.execPath, '-e', `Bun.serve({ port: ${UPSTREAM_PORT}, hostname: '127.0.0.1', fetch: () => new Response('hello from upstream!') })`]), { stdout: 'ignore', stderr: 'inherit' })
const dir = mkdtempSync(join(tmpdir(), 'portico-prof-cfg-'))
writeFileSync(join(dir, 'bench.yaml'), gatewayManifests(GATEWAY_PORT, UPSTREAM_PORT) + '---\n' + prefixRoute('upstream', '/'))
const gateway = Bun.spawn(
  pin(0, [process.execPath, '--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${OUT}`, `--cpu-prof-interval=${process.env.INTERVAL ?? 1000}`, join(root, 'src/main.ts'), '--config-dir', dir, '--workers', '1', '--admin-port', String(ADMIN_PORT), '--log-level', 'warn']),
  { stdout: 'inherit', stderr: 'inherit' },
)

try {
  await waitFor(`http://127.0.0.1:${UPSTREAM_PORT}/`)
  await waitFor(`http://127.0.0.1:${GATEWAY_PORT}/`)
  // h2: the same small GET as h2c streams (the tunnel the front gives h2 clients, TLS or not).
  const load = process.env.H2 === '1'
    ? ['h2load', '-c16', '-m10', '-D', String(DURATION), `http://127.0.0.1:${GATEWAY_PORT}/`]
    : ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', `http://127.0.0.1:${GATEWAY_PORT}/`]
  const wrk = Bun.spawn(pin(1, load), { stdout: 'pipe' })
  // perf sees what the JS profiler cannot: native code in Bun and the kernel (syscalls, loopback TCP).
  const perf = process.env.PERF === '1' && Bun.which('perf')
    ? Bun.spawn(['perf', 'record', '-g', '-o', join(OUT, 'perf.data'), '-p', String(gateway.pid), '--', 'sleep', String(Math.max(1, DURATION - 2))], { stdout: 'ignore', stderr: 'inherit' })
    : undefined
  const out = await new Response(wrk.stdout).text()
  await perf?.exited
  console.log(out.split('\n').filter((l) => /Requests\/sec|99%|50%|errors|finished in|status codes/.test(l)).join('\n'))
} finally {
  gateway.kill('SIGTERM')
  upstream.kill('SIGTERM')
  await Promise.all([gateway.exited, upstream.exited])
}
console.log(`profiles in ${OUT}:`, readdirSync(OUT).join(' '))
