/**
 * The admin API (Elysia). Composed from small plugins that take their dependencies as
 * arguments, so tests can drive them with `app.handle(new Request(...))`. Two apps:
 *
 * - createAdmin: everything (probes, /metrics, and the config views /resources, /config,
 *   /problems), served on the admin socket (loopback by default). With `auth` set, every
 *   config view needs the bearer token.
 * - createProbeAdmin: /healthz, /readyz and /metrics only, for the socket the kubelet and
 *   Prometheus reach; it has no config routes at all.
 *
 * Views never carry Secret data: they are built by redact.ts (see there).
 */
import { Elysia } from 'elysia'
import type { K8sObject } from '../store/kinds.ts'
import type { LoadProblem } from '../sources/source.ts'
import type { Snapshot } from '../ir/types.ts'
import { checkAdminToken, type AdminAuth } from './auth.ts'
import { configView } from './redact.ts'
import { resourcesView } from './resources.ts'
import { DASHBOARD_HTML } from './dashboard.ts'

export interface AdminDeps {
  /** True once the first snapshot is live. */
  ready(): boolean
  objects(): readonly K8sObject[]
  statusOf(key: string): Record<string, unknown> | undefined
  problems(): readonly LoadProblem[]
  /** The live IR, or undefined before the first snapshot. */
  snapshot(): Snapshot | undefined
  /** Problems that kept the latest translation from going live (IR validation, bind errors). */
  rejected(): readonly string[]
  /** Prometheus text exposition. */
  metrics(): string
  /** Backend pools with their endpoints' health, in-flight counts and circuit counters (src/admin/endpoints.ts). */
  endpoints?(): unknown
  /** Per-route request counters and duration histograms (telemetry/request-metrics.ts routeStats), for the dashboard. */
  routeStats?(): unknown
  /** When set, the config views need `Authorization: Bearer <token>`. */
  readonly auth?: AdminAuth
  /** Test hook (PORTICO_TEST_HOOKS=1 only): crash a data-plane worker thread; false when there is none. */
  crashWorker?(index: number): boolean
}

export function healthPlugin(deps: Pick<AdminDeps, 'ready'>) {
  return new Elysia({ name: 'admin.health' })
    .get('/healthz', () => 'ok')
    .get('/readyz', ({ set }) => {
      if (deps.ready()) return 'ready'
      set.status = 503
      return 'not ready: no configuration is live yet'
    })
}

/**
 * The views that show configuration. Every route added here is behind the token check (the
 * hook is local to this plugin, so probes and /metrics stay open).
 */
export function configPlugin(deps: Pick<AdminDeps, 'objects' | 'statusOf' | 'problems' | 'snapshot' | 'rejected' | 'auth' | 'endpoints' | 'routeStats' | 'crashWorker'>) {
  const { auth, crashWorker } = deps
  const app = new Elysia({ name: 'admin.config' })
    .onBeforeHandle(({ request }) => (auth ? checkAdminToken(auth, request) : undefined))
    .get('/resources', () => resourcesView(deps.objects(), deps.statusOf, deps.problems()))
    .get('/config', ({ set }) => {
      const snap = deps.snapshot()
      if (!snap) set.status = 503
      return snap ? configView(snap) : { error: 'no configuration is live yet' }
    })
    .get('/problems', () => ({ load: deps.problems(), rejected: deps.rejected() }))
    .get('/endpoints', () => deps.endpoints?.() ?? [])
    .get('/stats', () => deps.routeStats?.() ?? { buckets: [], routes: [] })
    // The dashboard (src/admin/dashboard.ts): one static page reading the views above.
    .get('/dashboard', ({ set }) => {
      set.headers['content-type'] = 'text/html; charset=utf-8'
      set.headers['cache-control'] = 'no-store'
      return DASHBOARD_HTML
    })
    .get('/', ({ redirect }) => redirect('/dashboard'))
  // Only when test hooks are on: the route does not exist otherwise (404), token or not.
  if (!crashWorker) return app
  return app.post('/debug/crash-worker', ({ query, set }) => {
    const index = Number(query.worker ?? 0)
    if (!Number.isInteger(index) || !crashWorker(index)) {
      set.status = 404
      return { error: `no worker ${query.worker}` }
    }
    set.status = 202
    return { crashing: index }
  })
}

export function metricsPlugin(deps: Pick<AdminDeps, 'metrics'>) {
  return new Elysia({ name: 'admin.metrics' }).get('/metrics', ({ set }) => {
    set.headers['content-type'] = 'text/plain; version=0.0.4'
    return deps.metrics()
  })
}

export function createAdmin(deps: AdminDeps) {
  return new Elysia({ name: 'admin' }).use(healthPlugin(deps)).use(metricsPlugin(deps)).use(configPlugin(deps))
}

/** Probes and metrics only: what may be reachable from outside the pod. */
export function createProbeAdmin(deps: Pick<AdminDeps, 'ready' | 'metrics'>) {
  return new Elysia({ name: 'admin.probe' }).use(healthPlugin(deps)).use(metricsPlugin(deps))
}

export { type AdminAuth } from './auth.ts'
