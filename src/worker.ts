/**
 * Entry point of a data-plane worker thread. The main thread watches, translates and validates;
 * each worker runs its own HTTP and L4 data planes on the same ports (SO_REUSEPORT, so the
 * kernel spreads connections) and applies the snapshots it is sent (snapshot-wire.ts).
 */
import type { Snapshot } from './ir/types.ts'
import { createLogger, withFields, type LogLevel } from './telemetry/logger.ts'
import { HttpDataplane } from './dataplane/http/server.ts'
import { L4Dataplane } from './dataplane/l4/server.ts'
import type { FromWorker, ToWorker } from './dataplane/worker-protocol.ts'
import { SnapshotDecoder, WireResyncError } from './dataplane/snapshot-wire.ts'
import { installRateLimitEnv } from './policy/rate-limit/env.ts'
import { ProcessGauges } from './dataplane/overload/process-gauges.ts'
import { EndpointRegistry, HealthTable } from './dataplane/upstream/registry.ts'
import { registryStats } from './dataplane/upstream/stats.ts'
import { configureTelemetry, flushTelemetry } from './telemetry/observe.ts'
import { requestMetrics } from './telemetry/request-metrics.ts'
import { overloadLines } from './dataplane/overload/metrics.ts'

declare const self: Worker

let http: HttpDataplane | undefined
let l4: L4Dataplane | undefined
const decoder = new SnapshotDecoder()
/** Active health from the main thread, shared by both planes' registries. */
const health = new HealthTable()
let registries: EndpointRegistry[] = []
let lastStats = ''

const reply = (msg: FromWorker) => self.postMessage(msg)

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const msg = event.data
  switch (msg.type) {
    case 'init': {
      const child = withFields(createLogger(msg.logLevel as LogLevel), { worker: msg.index })
      // Shared rate-limit counters and Redis, before any snapshot compiles a rate limit.
      installRateLimitEnv(msg.rateLimit, child)
      configureTelemetry(msg.telemetry)
      registries = [new EndpointRegistry({}, health), new EndpointRegistry({}, health)]
      const gauges = msg.gauges ? new ProcessGauges(msg.gauges, msg.index) : undefined
      http = new HttpDataplane({ logger: child, hostname: msg.hostname, reusePort: true, limits: msg.limits, registry: registries[0], gauges })
      l4 = new L4Dataplane({ logger: child, hostname: msg.hostname, reusePort: true, registry: registries[1] })
      // Backend stats for the main thread's /metrics and /endpoints, when they changed.
      setInterval(() => {
        const stats = registryStats(registries)
        const text = JSON.stringify(stats)
        if (text === lastStats) return
        lastStats = text
        reply({ type: 'stats', stats })
      }, 1000).unref()
      // Request metrics for the main thread's /metrics (cumulative; merged there at scrape).
      let lastSets = -1
      let lastCount = -1
      let lastOverload = ''
      setInterval(() => {
        let count = 0
        for (const set of requestMetrics.sets.values()) for (const c of set.cells.values()) count += c.count
        for (const s of requestMetrics.streams.values()) count += s.opened + s.closed
        // Overload gauges (open connections, lag) move without requests.
        const overload = JSON.stringify(overloadLines())
        if (count === lastCount && requestMetrics.sets.size === lastSets && overload === lastOverload) return
        lastCount = count
        lastOverload = overload
        lastSets = requestMetrics.sets.size
        reply({ type: 'telemetry', metrics: requestMetrics.export() })
      }, 1000).unref()
      reply({ type: 'ready' })
      break
    }
    case 'health':
      health.apply(msg.changes)
      break
    case 'crash':
      // Outside this handler, so nothing catches it: the thread dies with its sockets, as a bug would.
      setTimeout(() => {
        throw new Error('worker crashed on purpose (test hook)')
      })
      break
    case 'apply': {
      let snapshot: Snapshot
      try {
        snapshot = decoder.decode(msg.snapshot)
      } catch (err) {
        const resync = err instanceof WireResyncError
        reply({ type: 'applied', id: msg.id, problems: resync ? [] : [`worker could not decode the snapshot: ${(err as Error).message}`], failedPorts: [], resync })
        break
      }
      const problems: string[] = []
      const failedPorts: number[] = []
      try {
        const [h, l] = [await http!.apply(snapshot), await l4!.apply(snapshot)]
        problems.push(...h.problems, ...l.problems)
        failedPorts.push(...(h.failedPorts ?? []), ...(l.failedPorts ?? []))
      } catch (err) {
        problems.push(`worker apply failed: ${(err as Error).message}`)
      }
      reply({ type: 'applied', id: msg.id, problems, failedPorts })
      break
    }
    case 'stop': {
      await Promise.all([http?.stop(false, msg.drainMs), l4?.stop()])
      await flushTelemetry()
      reply({ type: 'stopped', id: msg.id })
      break
    }
  }
}
