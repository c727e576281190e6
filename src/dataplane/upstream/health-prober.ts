/**
 * Active health checks (BackendTrafficPolicy `healthCheck.active`), run once per process in the
 * main thread: one prober per (endpoint, check settings), however many routes, pool variants
 * and worker threads use it. Transitions (after `unhealthyThreshold` failed or
 * `healthyThreshold` passed probes in a row) go to every data plane as HealthChanges; the
 * pickers there skip unhealthy endpoints (and a passing check re-admits a passively ejected one).
 *
 * A new endpoint starts healthy (traffic is not held back until a first probe) and is probed at
 * once. HTTP probes use fetch (TLS pools over HTTPS with the pool's SNI and CA); TCP probes a
 * plain connect.
 */
import type { ActiveHealthCheck, BackendPool, Snapshot } from '../../ir/types.ts'
import type { Logger } from '../log.ts'
import { activeCheckId } from './pool.ts'
import { endpointKey, type HealthChange } from './registry.ts'
import { poolsInUse } from './variants.ts'

export interface ProbeTarget {
  readonly checkId: string
  readonly endpoint: string
  readonly address: string
  readonly port: number
  check: ActiveHealthCheck
  tls: BackendPool['tls']
  /** Pool keys that use this prober. */
  pools: Set<string>
  healthy: boolean
  passes: number
  failures: number
  lastProbeAt: number
  lastResult: string
  timer: Timer | undefined
  stopped: boolean
}

export class ActiveProber {
  readonly #targets = new Map<string, ProbeTarget>()

  constructor(
    private readonly onChange: (changes: readonly HealthChange[]) => void,
    private readonly logger?: Logger,
  ) {}

  /** The probers a snapshot needs: new ones start, gone ones stop, kept ones keep their counts. */
  update(snapshot: Snapshot): void {
    const wanted = new Map<string, { check: ActiveHealthCheck; checkId: string; address: string; port: number; tls: BackendPool['tls']; pools: Set<string> }>()
    for (const pool of poolsInUse(snapshot)) {
      const check = pool.healthCheck?.active
      if (!check) continue
      const checkId = activeCheckId(check)
      for (const ep of pool.endpoints) {
        const endpoint = endpointKey(ep.address, ep.port)
        const key = `${checkId}|${endpoint}`
        let entry = wanted.get(key)
        if (!entry) wanted.set(key, (entry = { check, checkId, address: ep.address, port: ep.port, tls: pool.tls, pools: new Set() }))
        entry.pools.add(pool.key)
      }
    }
    for (const [key, target] of this.#targets) {
      if (wanted.has(key)) continue
      target.stopped = true
      clearTimeout(target.timer)
      this.#targets.delete(key)
    }
    for (const [key, entry] of wanted) {
      const existing = this.#targets.get(key)
      if (existing) {
        existing.pools = entry.pools
        existing.tls = entry.tls
        continue
      }
      const target: ProbeTarget = {
        checkId: entry.checkId,
        endpoint: endpointKey(entry.address, entry.port),
        address: entry.address,
        port: entry.port,
        check: entry.check,
        tls: entry.tls,
        pools: entry.pools,
        healthy: true,
        passes: 0,
        failures: 0,
        lastProbeAt: 0,
        lastResult: 'not probed yet',
        timer: undefined,
        stopped: false,
      }
      this.#targets.set(key, target)
      void this.#probe(target)
    }
  }

  /** Every endpoint's current health, for a data plane that starts (a restarted worker). */
  state(): HealthChange[] {
    return [...this.#targets.values()].map((t) => [t.checkId, t.endpoint, t.healthy] as const)
  }

  list(): readonly ProbeTarget[] {
    return [...this.#targets.values()]
  }

  stop(): void {
    for (const target of this.#targets.values()) {
      target.stopped = true
      clearTimeout(target.timer)
    }
    this.#targets.clear()
  }

  async #probe(target: ProbeTarget): Promise<void> {
    if (target.stopped) return
    const check = target.check
    const result = check.type === 'TCP' ? await probeTcp(target, check.timeoutMs) : await probeHttp(target, check)
    if (target.stopped) return
    target.lastProbeAt = Date.now()
    target.lastResult = result ?? 'ok'
    if (result === undefined) {
      target.passes++
      target.failures = 0
      if (!target.healthy && target.passes >= check.healthyThreshold) this.#transition(target, true)
    } else {
      target.failures++
      target.passes = 0
      if (target.healthy && target.failures >= check.unhealthyThreshold) this.#transition(target, false)
    }
    target.timer = setTimeout(() => void this.#probe(target), check.intervalMs)
    target.timer.unref?.()
  }

  #transition(target: ProbeTarget, healthy: boolean): void {
    target.healthy = healthy
    this.logger?.info(healthy ? 'endpoint healthy again (active check)' : 'endpoint unhealthy (active check)', {
      endpoint: target.endpoint,
      pools: [...target.pools].join(','),
      result: target.lastResult,
    })
    this.onChange([[target.checkId, target.endpoint, healthy]])
  }
}

/** undefined = passed, else why it failed. */
async function probeHttp(target: ProbeTarget, check: ActiveHealthCheck): Promise<string | undefined> {
  const http = check.http ?? { path: '/', method: 'GET', expectedStatuses: [] }
  const host = target.address.includes(':') ? `[${target.address}]` : target.address
  const scheme = target.tls ? 'https' : 'http'
  const init: RequestInit & { tls?: unknown } = {
    method: http.method,
    headers: { host: http.hostname ?? target.tls?.hostname ?? `${host}:${target.port}`, 'user-agent': 'portico-health-check' },
    signal: AbortSignal.timeout(check.timeoutMs),
    redirect: 'manual',
    keepalive: false,
  }
  if (target.tls) init.tls = { serverName: target.tls.hostname, ...(target.tls.caPem ? { ca: target.tls.caPem } : {}) }
  try {
    const res = await fetch(`${scheme}://${host}:${target.port}${http.path}`, init)
    await res.body?.cancel().catch(() => {})
    const ok = http.expectedStatuses.length > 0 ? http.expectedStatuses.includes(res.status) : res.status >= 200 && res.status < 400
    return ok ? undefined : `status ${res.status}`
  } catch (err) {
    return err instanceof Error ? (err.name === 'TimeoutError' ? 'timeout' : err.message) : String(err)
  }
}

function probeTcp(target: ProbeTarget, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let done = false
    const finish = (result: string | undefined) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(result)
    }
    const timer = setTimeout(() => finish('timeout'), timeoutMs)
    Bun.connect({
      hostname: target.address,
      port: target.port,
      socket: {
        open(socket) {
          socket.end()
          finish(undefined)
        },
        data() {},
        connectError(_s, err) {
          finish(err.message)
        },
        error(_s, err) {
          finish(err.message)
        },
      },
    }).catch((err: unknown) => finish(err instanceof Error ? err.message : String(err)))
  })
}
