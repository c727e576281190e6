/**
 * Overload counters of this isolate (a worker, or the main thread without workers): connections
 * refused at accept by reason, requests shed, and the load the shedder measured. Exported with
 * the request metrics (telemetry/request-metrics.ts) and summed across workers at scrape.
 */

export type RefuseReason = 'listener' | 'process' | 'client' | 'rate'

export const overloadCounters = {
  refused: { listener: 0, process: 0, client: 0, rate: 0 } as Record<RefuseReason, number>,
  /** Requests answered 503 + Retry-After by the load shedder. */
  shed: 0,
}

/** Gauges of the live data planes of this isolate (their connection gates and load shedders). */
const gauges = new Set<() => readonly [string, number][]>()

export function addOverloadGauges(source: () => readonly [string, number][]): () => void {
  gauges.add(source)
  return () => void gauges.delete(source)
}

/** Metric lines ("name{labels}" → value) for the export to the main thread. */
export function overloadLines(): [string, number][] {
  const out: [string, number][] = []
  for (const [reason, n] of Object.entries(overloadCounters.refused)) out.push([`portico_connections_refused_total{reason="${reason}"}`, n])
  out.push(['portico_requests_shed_total', overloadCounters.shed])
  for (const source of gauges) out.push(...source())
  return out
}

const HELP: Record<string, [string, 'counter' | 'gauge']> = {
  portico_connections_refused_total: ['Client connections closed at accept by a limit: listener, process (all workers), client (per address), rate (accept rate)', 'counter'],
  portico_requests_shed_total: ['Requests answered 503 + Retry-After because the worker was overloaded (event-loop lag or memory)', 'counter'],
  portico_connections_open: ['Client connections open on HTTP listeners', 'gauge'],
  portico_event_loop_lag_seconds: ['Event-loop lag of each worker, the highest of the last second', 'gauge'],
  portico_overloaded: ['1 while a worker sheds new requests', 'gauge'],
  portico_request_buffer_bytes: ['Request body bytes held by request buffering', 'gauge'],
}

/** Prometheus text: every worker's lines summed (lag: the highest), one HELP/TYPE per name. */
export function renderOverload(all: readonly (readonly [string, number][] | undefined)[]): string {
  const merged = new Map<string, number>()
  for (const lines of all)
    for (const [key, n] of lines ?? []) {
      const prev = merged.get(key)
      merged.set(key, prev === undefined ? n : key.startsWith('portico_event_loop_lag') ? Math.max(prev, n) : prev + n)
    }
  if (merged.size === 0) return ''
  const byName = new Map<string, string>()
  for (const [key, n] of merged) {
    const name = key.replace(/\{.*$/, '')
    byName.set(name, `${byName.get(name) ?? ''}${key} ${n}\n`)
  }
  let out = ''
  for (const [name, lines] of byName) {
    const [help, type] = HELP[name] ?? ['', 'gauge']
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${lines}`
  }
  return out
}
