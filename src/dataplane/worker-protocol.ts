/** Messages between the main thread and data-plane workers. */
import type { HttpLimits } from './http/limits.ts'
import type { RateLimitEnv } from '../policy/rate-limit/env.ts'
import type { HealthChange } from './upstream/registry.ts'
import type { DataplaneStats } from './upstream/stats.ts'
import type { TelemetryOptions } from '../telemetry/observe.ts'
import type { MetricsExport } from '../telemetry/request-metrics.ts'
export type ToWorker =
  /** rateLimit: the process-wide rate-limit counters (a SharedArrayBuffer, shared, not copied) and Redis settings. */
  /** gauges: the process-wide connection and request-buffer counts (overload/process-gauges.ts), shared like rateLimit. */
  | { type: 'init'; index: number; hostname: string; logLevel: string; limits?: Partial<HttpLimits>; rateLimit?: RateLimitEnv; telemetry?: TelemetryOptions; gauges?: SharedArrayBuffer }
  /** A snapshot encoded by snapshot-wire.ts (msgpackr, with what the worker holds sent as ids). */
  | { type: 'apply'; id: number; snapshot: Uint8Array }
  | { type: 'stop'; id: number; drainMs: number }
  /** Active health transitions from the main thread's prober (all of them right after init). */
  | { type: 'health'; changes: readonly HealthChange[] }
  /** Test hook (PORTICO_TEST_HOOKS=1): die of an uncaught error, as a bug would kill the thread. */
  | { type: 'crash' }

export type FromWorker =
  | { type: 'ready' }
  /** `resync`: the worker could not decode the snapshot against what it holds (snapshot-wire.ts); send it whole. */
  | { type: 'applied'; id: number; problems: string[]; failedPorts: number[]; resync?: boolean }
  | { type: 'stopped'; id: number }
  /** Backend stats (passive ejections, circuits), sent about once a second when they changed. */
  | { type: 'stats'; stats: DataplaneStats }
  /** Request metrics (cumulative), sent about once a second when requests were served (telemetry/request-metrics.ts). */
  | { type: 'telemetry'; metrics: MetricsExport }
