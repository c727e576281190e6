/**
 * Request metrics: counters and histograms per (gateway, listener, route, rule, backend) label
 * set, then per (method, code, local-reply reason) cell. Each data plane (worker thread, or the
 * main thread with --workers 1) records into its own process-wide `requestMetrics`; the main
 * thread merges every source at scrape time (workers export theirs about once a second).
 *
 * Hot path: the label set is resolved once per (port plan, rule, pool) and kept (`labelsFor`),
 * the cell is one Map lookup on an integer key, the histograms are preallocated Float64Arrays:
 * no allocation per request once a cell exists.
 *
 * Cardinality: label values come from the route table only (no paths, no client hosts); method
 * is one of METHODS or OTHER; code is the status code; reason is one of LOCAL_REASONS.
 */
import { overloadLines, renderOverload } from '../dataplane/overload/metrics.ts'
import type { PortPlan, RoutePlan } from '../dataplane/snapshot.ts'

export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'OTHER'] as const
const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]))
export function methodIndex(method: string): number {
  return METHOD_INDEX.get(method) ?? 9
}

/** Why the gateway answered itself (the `reason` label of portico_http_local_replies_total). */
export const LOCAL_REASONS = ['', 'no_route', 'bad_request', 'unauthorized', 'forbidden', 'rate_limited', 'circuit_open', 'no_healthy_upstream', 'upstream_timeout', 'upstream_error', 'body_too_large', 'overloaded', 'policy', 'invalid_backend', 'direct_response', 'internal'] as const
export type LocalReason = (typeof LOCAL_REASONS)[number]
const REASON_INDEX = new Map<string, number>(LOCAL_REASONS.map((r, i) => [r, i]))

/** The local-reply reason for a status the gateway produced itself. */
export function reasonForStatus(status: number): LocalReason {
  switch (status) {
    case 400:
    case 431:
    case 501:
    case 505:
      return 'bad_request'
    case 401:
      return 'unauthorized'
    case 403:
      return 'forbidden'
    case 404:
      return 'no_route'
    case 413:
      return 'body_too_large'
    case 429:
      return 'rate_limited'
    case 502:
      return 'upstream_error'
    case 503:
      return 'no_healthy_upstream'
    case 504:
      return 'upstream_timeout'
    case 500:
      return 'internal'
    default:
      return 'policy'
  }
}

/** Seconds; the same for request and upstream durations. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const
const NB = DURATION_BUCKETS.length

/** Counters of one (method, code, reason) under one label set. Plain numbers: merged by adding. */
export class Cell {
  count = 0
  /** Non-cumulative bucket counts; the last slot is +Inf. */
  readonly dur = new Float64Array(NB + 1)
  durSum = 0
  readonly up = new Float64Array(NB + 1)
  upSum = 0
  upCount = 0
  bytesIn = 0
  bytesOut = 0
  constructor(readonly key: number) {}
}

function bucketOf(seconds: number): number {
  // linear: 15 comparisons at most, most requests end in the first few
  let i = 0
  while (i < NB && seconds > DURATION_BUCKETS[i]!) i++
  return i
}

export class LabelSet {
  readonly cells = new Map<number, Cell>()
  /** gateway, listener, route, rule, backend: the Prometheus label values. */
  constructor(
    readonly key: string,
    readonly gateway: string,
    readonly listener: string,
    readonly route: string,
    readonly rule: string,
    readonly backend: string,
  ) {}

  cell(method: number, code: number, reason: number): Cell {
    const k = (reason << 14) | (code << 4) | method
    let c = this.cells.get(k)
    if (c === undefined) this.cells.set(k, (c = new Cell(k)))
    return c
  }

  /**
   * One finished exchange. `upstreamSeconds` < 0: none (answered locally). `reason` 0: the
   * backend answered.
   */
  record(method: number, code: number, reason: number, seconds: number, upstreamSeconds: number, bytesIn: number, bytesOut: number): void {
    const c = this.cell(method, code, reason)
    c.count++
    c.dur[bucketOf(seconds)]!++
    c.durSum += seconds
    if (upstreamSeconds >= 0) {
      c.up[bucketOf(upstreamSeconds)]!++
      c.upSum += upstreamSeconds
      c.upCount++
    }
    c.bytesIn += bytesIn
    c.bytesOut += bytesOut
  }
}

/** Counters of L4 connections and WebSocket sessions, keyed by label text. */
export interface StreamCounters {
  opened: number
  closed: number
  bytesIn: number
  bytesOut: number
  messages: number
}

/** What the `backend` label is read from: a pool (its key), or a Composite (its id; dataplane/composite/plan.ts). */
export interface MetricsBackend {
  readonly ir: { readonly key: string }
}

export class RequestMetrics {
  /** Off: labelsFor still works, record is skipped by callers checking `enabled`. */
  enabled = true
  readonly sets = new Map<string, LabelSet>()
  /** Per port plan: rule → label set per pool (a new plan, a new cache). */
  readonly #byPlan = new WeakMap<PortPlan, Map<RoutePlan, Map<MetricsBackend | undefined, LabelSet>>>()
  readonly streams = new Map<string, StreamCounters>()
  /** Retries made per the rule's retry policy, by label text (rare: resolved per retry). */
  readonly retries = new Map<string, number>()
  /** Label sets for requests that matched no rule, per port plan. */
  readonly #unrouted = new WeakMap<PortPlan, LabelSet>()
  /** gRPC calls by label text (route, rule, service, method, grpc_code): [calls, duration seconds sum]. */
  readonly grpc = new Map<string, [number, number]>()

  /** One finished gRPC call (dataplane/http2/grpc-metrics.ts builds the label text once per method). */
  grpcCall(labels: string, seconds: number): void {
    const cell = this.grpc.get(labels)
    if (!cell) this.grpc.set(labels, [1, seconds])
    else {
      cell[0]++
      cell[1] += seconds
    }
  }

  labels(gateway: string, listener: string, route: string, rule: string, backend: string): LabelSet {
    const key = `${gateway}|${listener}|${route}|${rule}|${backend}`
    let set = this.sets.get(key)
    if (!set) this.sets.set(key, (set = new LabelSet(key, gateway, listener, route, rule, backend)))
    return set
  }

  /** The label set of a rule (and the pool it picked) on a port: resolved once per plan. */
  labelsFor(port: PortPlan, rule: RoutePlan, pool: MetricsBackend | undefined): LabelSet {
    let rules = this.#byPlan.get(port)
    if (!rules) this.#byPlan.set(port, (rules = new Map()))
    let pools = rules.get(rule)
    if (!pools) rules.set(rule, (pools = new Map()))
    let set = pools.get(pool)
    if (!set) {
      const listenerId = listenerOf(port, rule)
      const { route, rule: ruleIndex } = parseRuleId(rule.id)
      const [gateway, listener] = splitListenerId(listenerId)
      set = this.labels(gateway, listener, route, ruleIndex, pool?.ir.key ?? '')
      pools.set(pool, set)
    }
    return set
  }

  /** Requests no rule matched on this port (404 no route, malformed heads). */
  unrouted(port: PortPlan | undefined, portNumber: number): LabelSet {
    if (!port) return this.labels('', '', '', '', '')
    let set = this.#unrouted.get(port)
    if (!set) {
      const first = port.ir.listeners[0]
      const [gateway] = splitListenerId(first?.id ?? '')
      this.#unrouted.set(port, (set = this.labels(gateway, port.ir.listeners.length === 1 ? splitListenerId(first!.id)[1] : `:${portNumber}`, '', '', '')))
    }
    return set
  }

  /** One retry of a request on `rule` to `pool` (the pipeline's proxy, http/proxy.ts). */
  retry(ruleId: string, poolKey: string): void {
    const { route, rule } = parseRuleId(ruleId)
    const key = `route="${esc(route)}",rule="${esc(rule)}",backend="${esc(poolKey)}"`
    this.retries.set(key, (this.retries.get(key) ?? 0) + 1)
  }

  /**
   * Composite member calls (src/dataplane/composite), by label text: [count, durSum, ...buckets].
   * Labels come from the Composite (its id and member names) and a fixed outcome set.
   */
  readonly members = new Map<string, number[]>()

  /** One member call of a Composite: outcome ok, error, timeout, not_json, unavailable or cancelled. */
  member(composite: string, member: string, outcome: string, seconds: number): void {
    const key = `composite="${esc(composite)}",member="${esc(member)}",outcome="${outcome}"`
    let m = this.members.get(key)
    if (!m) this.members.set(key, (m = new Array<number>(NB + 3).fill(0)))
    m[0]!++
    m[1]! += seconds
    m[2 + bucketOf(seconds)]!++
  }

  stream(kind: string, labels: string): StreamCounters {
    const key = `${kind}|${labels}`
    let s = this.streams.get(key)
    if (!s) this.streams.set(key, (s = { opened: 0, closed: 0, bytesIn: 0, bytesOut: 0, messages: 0 }))
    return s
  }

  /** What a worker sends to the main thread: plain arrays (structured clone). */
  export(): MetricsExport {
    const sets: ExportedSet[] = []
    for (const set of this.sets.values()) {
      const cells: ExportedCell[] = []
      for (const c of set.cells.values()) cells.push([c.key, c.count, Array.from(c.dur), c.durSum, Array.from(c.up), c.upSum, c.upCount, c.bytesIn, c.bytesOut])
      sets.push([set.key, cells])
    }
    const streams: [string, number, number, number, number, number][] = []
    for (const [key, s] of this.streams) streams.push([key, s.opened, s.closed, s.bytesIn, s.bytesOut, s.messages])
    return { sets, streams, retries: [...this.retries], grpc: [...this.grpc].map(([k, [n, sum]]) => [k, n, sum] as [string, number, number]), members: [...this.members].map(([k, v]) => [k, [...v]] as [string, number[]]), overload: overloadLines() }
  }
}

export type ExportedCell = [key: number, count: number, dur: number[], durSum: number, up: number[], upSum: number, upCount: number, bytesIn: number, bytesOut: number]
export type ExportedSet = [key: string, cells: ExportedCell[]]
export interface MetricsExport {
  readonly sets: readonly ExportedSet[]
  readonly streams: readonly [string, number, number, number, number, number][]
  readonly retries?: readonly [string, number][]
  readonly grpc?: readonly [string, number, number][]
  readonly members?: readonly [string, number[]][]
  /** Connection admission and load shedding (dataplane/overload/metrics.ts). */
  readonly overload?: readonly [string, number][]
}

/** This process's request metrics (each worker thread has its own module instance). */
export const requestMetrics = new RequestMetrics()

const ruleListener = new WeakMap<PortPlan, Map<unknown, string>>()
/** The listener id ("gateway/<ns>/<name>/<listener>") holding the rule on this port: the first one, most specific first. */
function listenerOf(port: PortPlan, rule: RoutePlan): string {
  let index = ruleListener.get(port)
  if (!index) {
    index = new Map()
    for (const l of port.ir.listeners) for (const vh of l.virtualHosts) for (const r of vh.rules) if (!index.has(r)) index.set(r, l.id)
    ruleListener.set(port, index)
  }
  return index.get(rule.ir) ?? port.ir.listeners[0]?.id ?? ''
}

/** "gateway/<ns>/<name>/<listener>" → ["<ns>/<name>", "<listener>"]. */
export function splitListenerId(id: string): [string, string] {
  const parts = id.split('/')
  if (parts.length < 4) return ['', id]
  return [`${parts[1]}/${parts[2]}`, parts.slice(3).join('/')]
}

/** "httproute/<ns>/<name>/rule/<i>/match/<j>" → route "<ns>/<name>", rule "<i>". */
export function parseRuleId(id: string): { route: string; rule: string } {
  const parts = id.split('/')
  const r = parts.indexOf('rule')
  if (parts.length >= 3 && r >= 3) return { route: `${parts[1]}/${parts[2]}`, rule: parts[r + 1] ?? '' }
  return { route: id, rule: '' }
}

// ---------------------------------------------------------------- scrape

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

interface Merged {
  gateway: string
  listener: string
  route: string
  rule: string
  backend: string
  cells: Map<number, { count: number; dur: number[]; durSum: number; up: number[]; upSum: number; upCount: number; bytesIn: number; bytesOut: number }>
}

/** Sum several processes' exports (cumulative counters, so the latest of each source is summed). */
export function mergeExports(all: readonly MetricsExport[]): { sets: Map<string, Merged>; streams: Map<string, number[]> } {
  const sets = new Map<string, Merged>()
  const streams = new Map<string, number[]>()
  for (const ex of all) {
    for (const [key, cells] of ex.sets) {
      let m = sets.get(key)
      if (!m) {
        const [gateway = '', listener = '', route = '', rule = '', backend = ''] = key.split('|')
        sets.set(key, (m = { gateway, listener, route, rule, backend, cells: new Map() }))
      }
      for (const [k, count, dur, durSum, up, upSum, upCount, bytesIn, bytesOut] of cells) {
        const c = m.cells.get(k)
        if (!c) m.cells.set(k, { count, dur: [...dur], durSum, up: [...up], upSum, upCount, bytesIn, bytesOut })
        else {
          c.count += count
          c.durSum += durSum
          c.upSum += upSum
          c.upCount += upCount
          c.bytesIn += bytesIn
          c.bytesOut += bytesOut
          for (let i = 0; i < dur.length; i++) c.dur[i]! += dur[i]!
          for (let i = 0; i < up.length; i++) c.up[i]! += up[i]!
        }
      }
    }
    for (const [key, ...values] of ex.streams) {
      const s = streams.get(key)
      if (!s) streams.set(key, values)
      else for (let i = 0; i < values.length; i++) s[i]! += values[i]!
    }
  }
  return { sets, streams }
}

/** Prometheus text for the merged request and stream metrics. */
export function renderRequestMetrics(all: readonly MetricsExport[]): string {
  const { sets, streams } = mergeExports(all)
  let requests = ''
  let duration = ''
  let upstream = ''
  let bytesIn = ''
  let bytesOut = ''
  let local = ''
  for (const m of sets.values()) {
    const base = `gateway="${esc(m.gateway)}",listener="${esc(m.listener)}",route="${esc(m.route)}",rule="${esc(m.rule)}",backend="${esc(m.backend)}"`
    // requests and bytes by method/code (reasons folded), histograms likewise
    const byMc = new Map<number, { count: number; dur: number[]; durSum: number; up: number[]; upSum: number; upCount: number; bytesIn: number; bytesOut: number }>()
    for (const [k, c] of m.cells) {
      const reason = k >> 14
      const code = (k >> 4) & 0x3ff
      if (reason !== 0) local += `portico_http_local_replies_total{${base},code="${code}",reason="${LOCAL_REASONS[reason] ?? 'policy'}"} ${c.count}\n`
      const mc = k & 0x3fff
      const agg = byMc.get(mc)
      if (!agg) byMc.set(mc, { ...c, dur: [...c.dur], up: [...c.up] })
      else {
        agg.count += c.count
        agg.durSum += c.durSum
        agg.upSum += c.upSum
        agg.upCount += c.upCount
        agg.bytesIn += c.bytesIn
        agg.bytesOut += c.bytesOut
        for (let i = 0; i <= NB; i++) {
          agg.dur[i]! += c.dur[i]!
          agg.up[i]! += c.up[i]!
        }
      }
    }
    for (const [mc, c] of byMc) {
      const labels = `${base},method="${METHODS[mc & 15] ?? 'OTHER'}",code="${mc >> 4}"`
      requests += `portico_http_requests_total{${labels}} ${c.count}\n`
      bytesIn += `portico_http_request_bytes_total{${labels}} ${c.bytesIn}\n`
      bytesOut += `portico_http_response_bytes_total{${labels}} ${c.bytesOut}\n`
      duration += histogram('portico_http_request_duration_seconds', labels, c.dur, c.durSum, c.count)
      if (c.upCount > 0) upstream += histogram('portico_upstream_request_duration_seconds', labels, c.up, c.upSum, c.upCount)
    }
  }
  const retries = new Map<string, number>()
  for (const ex of all) for (const [k, n] of ex.retries ?? []) retries.set(k, (retries.get(k) ?? 0) + n)
  let out = ''
  out += `# HELP portico_http_retries_total Upstream attempts repeated per the rule's retry policy\n# TYPE portico_http_retries_total counter\n`
  for (const [k, n] of retries) out += `portico_http_retries_total{${k}} ${n}\n`
  out += renderMembers(all)
  out += renderOverload(all.map((ex) => ex.overload))
  out += `# HELP portico_http_requests_total HTTP requests answered, by route, backend, method and status code\n# TYPE portico_http_requests_total counter\n${requests}`
  out += `# HELP portico_http_request_duration_seconds Time from the request head to the last response byte\n# TYPE portico_http_request_duration_seconds histogram\n${duration}`
  out += `# HELP portico_upstream_request_duration_seconds Time from the request sent upstream to the backend's last response byte\n# TYPE portico_upstream_request_duration_seconds histogram\n${upstream}`
  out += `# HELP portico_http_request_bytes_total Request bytes received from clients (head and body)\n# TYPE portico_http_request_bytes_total counter\n${bytesIn}`
  out += `# HELP portico_http_response_bytes_total Response bytes sent to clients (head and body)\n# TYPE portico_http_response_bytes_total counter\n${bytesOut}`
  const grpc = new Map<string, [number, number]>()
  for (const ex of all) for (const [k, n, sum] of ex.grpc ?? []) {
    const c = grpc.get(k)
    if (!c) grpc.set(k, [n, sum])
    else {
      c[0] += n
      c[1] += sum
    }
  }
  if (grpc.size > 0) {
    out += `# HELP portico_grpc_calls_total gRPC calls answered, by route, rule, service, method and grpc-status code\n# TYPE portico_grpc_calls_total counter\n`
    for (const [k, [n]] of grpc) out += `portico_grpc_calls_total{${k}} ${n}\n`
    out += `# HELP portico_grpc_call_duration_seconds_sum Seconds gRPC calls lasted (from the request head to the trailers), summed\n# TYPE portico_grpc_call_duration_seconds_sum counter\n`
    for (const [k, [, sum]] of grpc) out += `portico_grpc_call_duration_seconds_sum{${k}} ${sum}\n`
  }
  out += `# HELP portico_http_local_replies_total Answers the gateway made itself, by reason (no_route, unauthorized, rate_limited, circuit_open, ...)\n# TYPE portico_http_local_replies_total counter\n${local}`
  const kinds: Record<string, [string, string][]> = {}
  for (const [key, [opened = 0, closed = 0, bin = 0, bout = 0, messages = 0]] of streams) {
    const bar = key.indexOf('|')
    const kind = key.slice(0, bar)
    const labels = key.slice(bar + 1)
    const list = (kinds[kind] ??= [])
    list.push([`total{${labels}}`, String(opened)], [`open{${labels}}`, String(opened - closed)], [`received_bytes_total{${labels}}`, String(bin)], [`sent_bytes_total{${labels}}`, String(bout)])
    if (kind === 'websocket') list.push([`messages_total{${labels}}`, String(messages)])
  }
  for (const [kind, rows] of Object.entries(kinds)) {
    const prefix = kind === 'websocket' ? 'portico_websocket_sessions_' : kind === 'udp' ? 'portico_udp_sessions_' : `portico_${kind}_connections_`
    const byName = new Map<string, string[]>()
    for (const [suffix, v] of rows) {
      const name = suffix.slice(0, suffix.indexOf('{'))
      const list = byName.get(name) ?? []
      list.push(`${prefix}${suffix} ${v}`)
      byName.set(name, list)
    }
    for (const [name, lines] of byName) {
      const full = name === 'messages_total' ? 'portico_websocket_messages_total' : `${prefix}${name}`
      const type = name === 'open' ? 'gauge' : 'counter'
      out += `# HELP ${full} ${streamHelp(kind, name)}\n# TYPE ${full} ${type}\n`
      for (const l of lines) out += name === 'messages_total' ? `${l.replace(`${prefix}messages_total`, 'portico_websocket_messages_total')}\n` : `${l}\n`
    }
  }
  return out
}

/** Composite member calls: a counter and a latency histogram per (composite, member, outcome). */
function renderMembers(all: readonly MetricsExport[]): string {
  const merged = new Map<string, number[]>()
  for (const ex of all)
    for (const [k, v] of ex.members ?? []) {
      const m = merged.get(k)
      if (!m) merged.set(k, [...v])
      else for (let i = 0; i < v.length; i++) m[i]! += v[i]!
    }
  if (merged.size === 0) return ''
  let count = ''
  let dur = ''
  for (const [labels, v] of merged) {
    count += `portico_composite_member_requests_total{${labels}} ${v[0]}\n`
    dur += histogram('portico_composite_member_duration_seconds', labels, v.slice(2), v[1]!, v[0]!)
  }
  return (
    `# HELP portico_composite_member_requests_total Calls to Composite members, by composite, member and outcome (ok, error, timeout, not_json, unavailable, cancelled)\n# TYPE portico_composite_member_requests_total counter\n${count}` +
    `# HELP portico_composite_member_duration_seconds Time from a Composite member call to its whole answer\n# TYPE portico_composite_member_duration_seconds histogram\n${dur}`
  )
}

function streamHelp(kind: string, name: string): string {
  const what = kind === 'websocket' ? 'WebSocket sessions' : kind === 'udp' ? 'UDP sessions (per client address and port)' : `${kind.toUpperCase()} connections`
  switch (name) {
    case 'total':
      return `${what} accepted`
    case 'open':
      return `${what} open now`
    case 'received_bytes_total':
      return `Bytes received from clients over ${what}`
    case 'sent_bytes_total':
      return `Bytes sent to clients over ${what}`
    default:
      return `Frames relayed over ${what}`
  }
}

function histogram(name: string, labels: string, buckets: ArrayLike<number>, sum: number, count: number): string {
  let out = ''
  let cum = 0
  for (let i = 0; i < NB; i++) {
    cum += buckets[i]!
    out += `${name}_bucket{${labels},le="${DURATION_BUCKETS[i]}"} ${cum}\n`
  }
  out += `${name}_bucket{${labels},le="+Inf"} ${count}\n${name}_sum{${labels}} ${sum}\n${name}_count{${labels}} ${count}\n`
  return out
}

export { REASON_INDEX }
export function reasonIndex(reason: LocalReason | string): number {
  return REASON_INDEX.get(reason) ?? 12
}

/** Per route (cumulative since start): requests, 5xx, local replies and the duration histogram; the dashboard diffs two reads. */
export interface RouteStats {
  readonly route: string
  readonly requests: number
  readonly errors: number
  readonly local: number
  /** Non-cumulative counts per DURATION_BUCKETS slot (+Inf last). */
  readonly buckets: number[]
}

export function routeStats(all: readonly MetricsExport[]): { buckets: readonly number[]; routes: RouteStats[] } {
  const { sets } = mergeExports(all)
  const byRoute = new Map<string, { route: string; requests: number; errors: number; local: number; buckets: number[] }>()
  for (const m of sets.values()) {
    const name = m.route || '(no route)'
    let r = byRoute.get(name)
    if (!r) byRoute.set(name, (r = { route: name, requests: 0, errors: 0, local: 0, buckets: new Array(NB + 1).fill(0) }))
    for (const [k, c] of m.cells) {
      const code = (k >> 4) & 0x3ff
      r.requests += c.count
      if (code >= 500) r.errors += c.count
      if (k >> 14 !== 0) r.local += c.count
      for (let i = 0; i <= NB; i++) r.buckets[i]! += c.dur[i]!
    }
  }
  return { buckets: DURATION_BUCKETS, routes: [...byRoute.values()].sort((a, b) => (a.route < b.route ? -1 : 1)) }
}
