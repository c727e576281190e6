#!/usr/bin/env bun
/**
 * What the whole gateway holds per route, in process, on demand (never in CI): startPortico
 * (one worker: the data plane in this thread, as bench/scale.ts runs it) on a folder with one
 * file of ROUTES HTTPRoutes, then the JS heap after a full GC and the RSS, against the same
 * with 10 routes started first in the same process. TYPES=1 lists the object types per route.
 * Unlike bench/profile-memory.ts (stage by stage), this includes the status sinks, the file
 * source and whatever else the process keeps.
 *
 *   npx bun bench/profile-memory-app.ts      # ROUTES=10000
 */
import { heapStats } from 'bun:jsc'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPortico } from '../src/app.ts'
import { createLogger } from '../src/telemetry/logger.ts'
import { freePort, gatewayManifests, waitFor } from './lib.ts'
import { scaleRoute } from './scale-routes.ts'

const ROUTES = Number(process.env.ROUTES ?? 10000)
const POLICIES = process.env.POLICIES === '1'

async function measure(n: number): Promise<{ heap: number; capacity: number; rss: number; types: Record<string, number>; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `portico-memory-${n}-`))
  const port = await freePort()
  writeFileSync(join(dir, 'base.yaml'), gatewayManifests(port, 9))
  writeFileSync(join(dir, 'routes.yaml'), Array.from({ length: n }, (_, i) => scaleRoute(`r${i}`, `/r${i}`, POLICIES)).join('---\n'))
  const app = await startPortico({ configDir: dir, adminPort: 0, controllerName: 'portico.dev/gateway-controller', logger: createLogger('warn'), workers: 1, telemetry: { accessLog: false } } as Parameters<typeof startPortico>[0])
  await waitFor(`http://127.0.0.1:${app.adminPort}/readyz`, 600)
  await app.controller.idle()
  await Bun.sleep(500)
  Bun.gc(true)
  Bun.gc(true)
  await Bun.sleep(500)
  Bun.gc(true)
  const s = heapStats()
  return { heap: s.heapSize, capacity: s.heapCapacity, rss: process.memoryUsage.rss(), types: s.objectTypeCounts, stop: () => app.stop() }
}

const small = await measure(10)
const large = await measure(ROUTES)
const per = (a: number, b: number) => ((b - a) / (ROUTES - 10)).toFixed(0)
console.log(
  `${ROUTES} routes${POLICIES ? ' (2 policies each)' : ''} vs 10, one process: live JS heap +${per(small.heap, large.heap)} B/route, ` +
    `JS heap capacity +${per(small.capacity, large.capacity)} B/route, RSS +${per(small.rss, large.rss)} B/route (RSS ${(large.rss / 2 ** 20).toFixed(0)} MiB)`,
)
if (process.env.TYPES === '1') {
  const grown = Object.entries(large.types).map(([k, v]) => [k, (v - (small.types[k] ?? 0)) / ROUTES] as const).filter(([, d]) => d >= 0.5).sort((a, b) => b[1] - a[1])
  console.log(grown.map(([k, d]) => `${k} ${d.toFixed(1)}`).join(', '))
}
await large.stop()
await small.stop()
