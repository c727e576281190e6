/**
 * The admin API (Elysia), on its own port. Composed from small plugins that take their
 * dependencies as arguments, so tests can drive them with `app.handle(new Request(...))`.
 */
import { Elysia } from 'elysia'
import type { K8sObject } from '../store/kinds.ts'
import type { LoadProblem } from '../sources/source.ts'
import type { Snapshot } from '../ir/types.ts'
import { resourcesView } from './resources.ts'

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

export function configPlugin(deps: Pick<AdminDeps, 'objects' | 'statusOf' | 'problems' | 'snapshot' | 'rejected'>) {
  return new Elysia({ name: 'admin.config' })
    .get('/resources', () => resourcesView(deps.objects(), deps.statusOf, deps.problems()))
    .get('/config', ({ set }) => {
      const snap = deps.snapshot()
      if (!snap) set.status = 503
      return snap ?? { error: 'no configuration is live yet' }
    })
    .get('/problems', () => ({ load: deps.problems(), rejected: deps.rejected() }))
}

export function metricsPlugin(deps: Pick<AdminDeps, 'metrics'>) {
  return new Elysia({ name: 'admin.metrics' }).get('/metrics', ({ set }) => {
    set.headers['content-type'] = 'text/plain; version=0.0.4'
    return deps.metrics()
  })
}

export function createAdmin(deps: AdminDeps) {
  return new Elysia({ name: 'admin' }).use(healthPlugin(deps)).use(configPlugin(deps)).use(metricsPlugin(deps))
}
