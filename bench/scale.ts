#!/usr/bin/env bun
/**
 * Route-scale benchmark, on demand (never in CI). For 10, 1,000, 5,000 and 10,000 HTTPRoutes (one path
 * prefix each, all on one host, so every request is matched against the whole table):
 *   - start-up: process start → /readyz 200 (load + translate + compile + bind)
 *   - rebuild: the controller's own timing of the latest translate+validate+apply
 *   - RSS of the gateway when idle after start-up (configuration memory) and after a load run
 *   - req/s and p99 of small GETs to a route in the middle of the table, and the gateway's CPU
 *     µs per request (utime+stime over the run: what a loaded machine disturbs least)
 * and, at the largest size, under load on an existing route: time from writing a manifest with
 * a new route to its first 200 (p50/p99 over ROUNDS additions), and from editing one route in the
 * file that holds all of them to its first 200, with the errors the load saw.
 *
 * POLICIES=1 attaches two policies to every route (a BackendTrafficPolicy with retries and a
 * SecurityPolicy authorization that allows loopback), so the same figures show what per-route
 * policies cost; the requests are still answered 200.
 *
 *   npx bun bench/scale.ts              # SIZES=10,1000,5000,10000 DURATION=5 ROUNDS=20 WORKERS=1 POLICIES=0 BASE_PORT=21700
 *   SIZES=10,10000 npx bun bench/scale.ts
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cpuTicks, gatewayManifests, percentile, rssMiB, TICK_US, waitFor, wrk } from './lib.ts'
import { scaleRoute } from './scale-routes.ts'

const SIZES = (process.env.SIZES ?? '10,1000,5000,10000').split(',').map(Number)
const DURATION = Number(process.env.DURATION ?? 5)
const ROUNDS = Number(process.env.ROUNDS ?? 20)
const WORKERS = Number(process.env.WORKERS ?? 1)
const POLICIES = process.env.POLICIES === '1'
const BASE_PORT = Number(process.env.BASE_PORT ?? 21700)
const UPSTREAM_PORT = BASE_PORT
const GATEWAY_PORT = BASE_PORT + 1
const ADMIN_PORT = BASE_PORT + 2
const root = join(import.meta.dir, '..')
/** Access log lines would go to this terminal: off unless ACCESS_LOG=on (as in bench/http.ts). */
const ACCESS_LOG = process.env.ACCESS_LOG === 'on' ? 'on' : 'off'

if (!Bun.which('wrk')) {
  console.error('wrk not found: apt-get install -y wrk')
  process.exit(2)
}

const upstream = Bun.spawn([process.execPath, '-e', `Bun.serve({ port: ${UPSTREAM_PORT}, hostname: '127.0.0.1', fetch: () => new Response('hello from upstream!') })`], { stdout: 'ignore', stderr: 'inherit' })

const route = (name: string, prefix: string) => scaleRoute(name, prefix, POLICIES)

function writeAtomically(dir: string, name: string, text: string) {
  const tmp = join(dir, `.tmp-${name}`)
  writeFileSync(tmp, text)
  renameSync(tmp, join(dir, name))
}

async function rebuildSeconds(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).text()
  return Number(/^portico_config_rebuild_seconds (\S+)$/m.exec(text)?.[1])
}

interface Row { routes: number; startupMs: number; rebuildMs: number; rssIdle: number; rss: number; rps: number; p99: number; errors: number; cpuUs: number }
const rows: Row[] = []
let churn: { p50: number; p99: number; max: number; editP50: number; editP99: number; loadErrors: number; loadRps: number } | undefined

try {
  await waitFor(`http://127.0.0.1:${UPSTREAM_PORT}/`)
  for (const n of SIZES) {
    const dir = mkdtempSync(join(tmpdir(), `portico-scale-${n}-`))
    writeFileSync(join(dir, 'base.yaml'), gatewayManifests(GATEWAY_PORT, UPSTREAM_PORT))
    writeFileSync(join(dir, 'routes.yaml'), Array.from({ length: n }, (_, i) => route(`r${i}`, `/r${i}`)).join('---\n'))
    const t0 = performance.now()
    const gw = Bun.spawn([process.execPath, join(root, 'src/main.ts'), '--config-dir', dir, '--admin-port', String(ADMIN_PORT), '--workers', String(WORKERS), '--log-level', 'warn', '--access-log', ACCESS_LOG], { stdout: ACCESS_LOG === 'on' ? 'ignore' : 'inherit', stderr: 'inherit' })
    try {
      await waitFor(`http://127.0.0.1:${ADMIN_PORT}/readyz`, 600)
      const startupMs = performance.now() - t0
      const rebuildMs = (await rebuildSeconds()) * 1000
      const target = `http://127.0.0.1:${GATEWAY_PORT}/r${Math.floor(n / 2)}/item`
      await waitFor(target)
      await Bun.sleep(1000)
      // configuration memory; after load RSS also holds garbage the GC has not returned yet
      const rssIdle = rssMiB(gw.pid)
      await wrk(target, { connections: 64, seconds: 1 }) // warm-up
      const ticks = await cpuTicks(gw.pid)
      const run = await wrk(target, { connections: 64, seconds: DURATION })
      const cpuUs = (((await cpuTicks(gw.pid)) - ticks) * TICK_US) / run.requests
      rows.push({ routes: n, startupMs, rebuildMs, rssIdle, rss: rssMiB(gw.pid), rps: run.rps, p99: run.p99ms, errors: run.errors, cpuUs })

      if (n === Math.max(...SIZES)) {
        // new routes while load runs on an existing one
        const load = wrk(target, { connections: 32, seconds: Math.max(10, 2 * ROUNDS) })
        await Bun.sleep(500)
        /** Time from `change()` to the first 200 on `path`. */
        const firstOk = async (change: () => void, path: string): Promise<number> => {
          const started = performance.now()
          change()
          for (;;) {
            const ok = await fetch(`http://127.0.0.1:${GATEWAY_PORT}${path}`).then((r) => r.status === 200, () => false)
            if (ok) break
            await Bun.sleep(1)
          }
          return performance.now() - started
        }
        const latencies: number[] = []
        for (let k = 0; k < ROUNDS; k++) {
          latencies.push(await firstOk(() => writeAtomically(dir, `new-${k}.yaml`, route(`new-${k}`, `/new-${k}`)), `/new-${k}/x`))
          await Bun.sleep(200)
        }
        // one route edited inside the file that holds all n: only its document is parsed again
        const edits: number[] = []
        for (let k = 0; k < ROUNDS; k++) {
          const routes = Array.from({ length: n }, (_, i) => route(`r${i}`, i === k ? `/edited-${k}` : `/r${i}`))
          edits.push(await firstOk(() => writeAtomically(dir, 'routes.yaml', routes.join('---\n')), `/edited-${k}/x`))
          await Bun.sleep(200)
        }
        const loadResult = await load
        churn = {
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: Math.max(...latencies),
          editP50: percentile(edits, 50),
          editP99: percentile(edits, 99),
          loadErrors: loadResult.errors,
          loadRps: loadResult.rps,
        }
      }
    } finally {
      gw.kill('SIGTERM')
      await gw.exited
    }
  }
  console.log(`route scale, ${WORKERS} worker(s)${POLICIES ? ', 2 policies on every route' : ''}, wrk -t1 -c64 -d${DURATION}s to a route in the middle of the table`)
  console.log('routes  startup ms  rebuild ms  RSS idle MiB  RSS after load   req/s   p99 ms  CPU µs/req  errors')
  for (const r of rows)
    console.log(`${String(r.routes).padStart(6)}  ${r.startupMs.toFixed(0).padStart(10)}  ${r.rebuildMs.toFixed(1).padStart(10)}  ${r.rssIdle.toFixed(0).padStart(12)}  ${r.rss.toFixed(0).padStart(14)}  ${r.rps.toFixed(0).padStart(7)}  ${r.p99.toFixed(2).padStart(7)}  ${r.cpuUs.toFixed(1).padStart(10)}  ${r.errors}`)
  const small = rows.find((r) => r.routes === Math.min(...SIZES))
  const large = rows.find((r) => r.routes === Math.max(...SIZES))
  if (small && large) {
    console.log(`req/s at ${large.routes} routes vs ${small.routes}: ${(large.rps / small.rps).toFixed(2)}x; CPU per request ${(large.cpuUs / small.cpuUs).toFixed(2)}x`)
    console.log(`RSS idle per route: ${(((large.rssIdle - small.rssIdle) * 1024) / (large.routes - small.routes)).toFixed(1)} KiB`)
  }
  if (churn)
    console.log(
      `new route → first 200 under load (${ROUNDS} additions at ${Math.max(...SIZES)} routes): p50 ${churn.p50.toFixed(0)} ms, p99 ${churn.p99.toFixed(0)} ms, max ${churn.max.toFixed(0)} ms; ` +
        `one route edited in the ${Math.max(...SIZES)}-route file: p50 ${churn.editP50.toFixed(0)} ms, p99 ${churn.editP99.toFixed(0)} ms; errors on the loaded route: ${churn.loadErrors} (${churn.loadRps.toFixed(0)} req/s)`,
    )
} finally {
  upstream.kill('SIGTERM')
  await upstream.exited
}
