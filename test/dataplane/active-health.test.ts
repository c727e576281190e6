/**
 * Active health checks: the prober (main thread) marks endpoints unhealthy and healthy again,
 * data planes skip unhealthy ones, one prober per endpoint whatever the pools and workers.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import { ActiveProber } from '../../src/dataplane/upstream/health-prober.ts'
import { EndpointRegistry, HealthTable } from '../../src/dataplane/upstream/registry.ts'
import { WorkerPool } from '../../src/dataplane/worker-pool.ts'
import type { ActiveHealthCheck, BackendPool, Snapshot } from '../../src/ir/types.ts'
import { createLogger } from '../../src/telemetry/logger.ts'
import { endpointsView } from '../../src/admin/endpoints.ts'
import { pool, rule, simple } from './ir.ts'
import { freePort } from '../e2e/support.ts'

class Backend {
  server: Server<undefined> | undefined
  healthStatus = 200
  probes = 0
  hits = 0
  constructor(
    readonly name: string,
    public port = 0,
  ) {}
  start(): this {
    this.server = Bun.serve({
      port: this.port,
      hostname: '127.0.0.1',
      fetch: (req) => {
        if (new URL(req.url).pathname === '/healthz') {
          this.probes++
          return new Response('health', { status: this.healthStatus })
        }
        this.hits++
        return new Response(this.name)
      },
    })
    this.port = this.server.port!
    return this
  }
  async stop(): Promise<void> {
    await this.server?.stop(true)
    this.server = undefined
  }
}

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

const HTTP_CHECK: ActiveHealthCheck = { type: 'HTTP', intervalMs: 100, timeoutMs: 200, unhealthyThreshold: 2, healthyThreshold: 2, http: { path: '/healthz', method: 'GET', expectedStatuses: [200] } }

function checked(key: string, ports: number[], check: ActiveHealthCheck = HTTP_CHECK): BackendPool {
  return { ...pool(key, ports), healthCheck: { active: check } }
}

async function inThread(snap: Snapshot) {
  const table = new HealthTable()
  const dp = new HttpDataplane({ hostname: '127.0.0.1', registry: new EndpointRegistry({}, table) })
  const prober = new ActiveProber((changes) => table.apply(changes))
  const result = await dp.apply(snap)
  expect(result.problems).toEqual([])
  prober.update(snap)
  cleanup.push(() => dp.stop(true), () => prober.stop())
  return { dp, prober, base: `http://127.0.0.1:${dp.boundPort(snap.http[0]!.port)}` }
}

async function names(base: string, n: number): Promise<{ names: string[]; failed: number }> {
  const out = await Promise.all(Array.from({ length: n }, () => fetch(`${base}/x`).then(async (r) => ({ ok: r.status === 200, name: await r.text() }))))
  return { names: out.filter((o) => o.ok).map((o) => o.name), failed: out.filter((o) => !o.ok).length }
}

describe('active health checks', () => {
  test('an endpoint failing its HTTP check gets no traffic, and gets it again once it passes', async () => {
    const a = new Backend('a').start()
    const b = new Backend('b').start()
    cleanup.push(() => a.stop(), () => b.stop())
    const { base, prober } = await inThread(simple(0, [rule()], [checked('p1', [a.port, b.port])]))
    expect(new Set((await names(base, 20)).names)).toEqual(new Set(['a', 'b']))
    a.healthStatus = 503
    await Bun.sleep(400)
    expect(prober.list().find((t) => t.port === a.port)!.healthy).toBe(false)
    a.hits = 0
    expect((await names(base, 30)).names.every((n) => n === 'b')).toBe(true)
    expect(a.hits).toBe(0)
    a.healthStatus = 200
    await Bun.sleep(400)
    expect(new Set((await names(base, 20)).names)).toEqual(new Set(['a', 'b']))
  })

  test('a backend killed mid-run is ejected and re-admitted by the checker: zero failed requests', async () => {
    const a = new Backend('a').start()
    const b = new Backend('b').start()
    cleanup.push(() => a.stop(), () => b.stop())
    const tcp: ActiveHealthCheck = { type: 'TCP', intervalMs: 100, timeoutMs: 200, unhealthyThreshold: 1, healthyThreshold: 1 }
    const { base, prober, dp } = await inThread(simple(0, [rule()], [checked('p1', [a.port, b.port], tcp)]))
    let failed = 0
    let total = 0
    const seen: string[] = []
    let running = true
    const load = Promise.all(
      Array.from({ length: 6 }, async () => {
        while (running) {
          const res = await fetch(`${base}/x`)
          const name = await res.text()
          total++
          if (res.status !== 200) failed++
          else seen.push(name)
          await Bun.sleep(2)
        }
      }),
    )
    await Bun.sleep(300)
    await a.stop()
    await Bun.sleep(400)
    const target = prober.list().find((t) => t.port === a.port)!
    expect(target.healthy).toBe(false)
    const view = endpointsView(simple(0, [rule()], [checked('p1', [a.port, b.port], tcp)]), prober.list(), { endpoints: [], circuits: [], budgets: [] })
    expect(view[0]!.endpoints.find((e) => e.endpoint.endsWith(`:${a.port}`))!.healthy).toBe(false)
    seen.length = 0
    a.start()
    await Bun.sleep(400)
    expect(target.healthy).toBe(true)
    await Bun.sleep(200)
    running = false
    await load
    expect(total).toBeGreaterThan(100)
    expect(failed).toBe(0)
    expect(seen.filter((n) => n === 'a').length).toBeGreaterThan(0)
    expect(dp.registry.list().every((s) => s.ejectedUntil <= Date.now())).toBe(true)
  })

  test('one prober per endpoint: pools and variants with the same check share it; another check is another prober', async () => {
    const a = new Backend('a').start()
    cleanup.push(() => a.stop())
    const snap = simple(0, [rule()], [checked('p1', [a.port]), checked('p1#variant', [a.port]), checked('p2', [a.port], { ...HTTP_CHECK, intervalMs: 200 })])
    const prober = new ActiveProber(() => {})
    cleanup.push(() => prober.stop())
    prober.update(snap)
    expect(prober.list().length).toBe(2)
    expect([...prober.list().find((t) => t.check.intervalMs === 100)!.pools].sort()).toEqual(['p1', 'p1#variant'])
    await Bun.sleep(1000)
    // 100 ms + 200 ms intervals over one second: about 10 + 5 probes, not 3 × that.
    expect(a.probes).toBeGreaterThanOrEqual(10)
    expect(a.probes).toBeLessThanOrEqual(18)
    prober.update(simple(0, [rule()], [pool('p1', [a.port])]))
    expect(prober.list().length).toBe(0)
    const after = a.probes
    await Bun.sleep(300)
    expect(a.probes).toBeLessThanOrEqual(after + 1)
  })

  test('--workers 2: probes come from the main thread once, and every worker skips the unhealthy endpoint', async () => {
    const a = new Backend('a').start()
    const b = new Backend('b').start()
    cleanup.push(() => a.stop(), () => b.stop())
    const port = await freePort()
    const snap = simple(port, [rule()], [checked('p1', [a.port, b.port])])
    let prober: ActiveProber | undefined
    const workers = new WorkerPool({
      count: 2,
      workerUrl: new URL('../../src/worker.ts', import.meta.url).href,
      hostname: '127.0.0.1',
      logLevel: 'error',
      logger: createLogger('error'),
      health: () => prober?.state() ?? [],
    })
    prober = new ActiveProber((changes) => workers.health(changes))
    cleanup.push(() => workers.stop(1000), () => prober!.stop())
    expect((await workers.apply(snap)).problems).toEqual([])
    prober.update(snap)
    a.probes = 0
    await Bun.sleep(1000)
    // One prober for endpoint a, not one per worker: ~10 probes a second at 100 ms.
    expect(a.probes).toBeLessThanOrEqual(13)
    a.healthStatus = 500
    await Bun.sleep(400)
    a.hits = 0
    const seen = new Set<string>()
    await Promise.all(
      Array.from({ length: 60 }, async () => {
        const r = await fetch(`http://127.0.0.1:${port}/x`, { headers: { connection: 'close' }, keepalive: false })
        seen.add(await r.text())
      }),
    )
    expect([...seen]).toEqual(['b'])
    expect(a.hits).toBe(0)
    // Worker stats reach the main thread (about once a second).
    await Bun.sleep(1200)
    expect(workers.stats().endpoints.length).toBeGreaterThan(0)
  })
})
