/**
 * Telemetry of gRPC calls (the access log line, with grpc_status, when the log is on) and metrics per gRPC method: every call counts in portico_http_requests_total (its rule and backend,
 * POST 200, like any request) and in portico_grpc_calls_total{route, rule, service, method,
 * grpc_code} with its duration (telemetry/request-metrics.ts renders them).
 *
 * Cardinality: service and method come from the path a client chose, so only well-formed gRPC
 * names of routed calls are labels, and at most MAX_METHODS distinct ones per process; the rest
 * count as service="other", method="other".
 */
import type { PortPlan, RoutePlan } from '../snapshot.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import type { IncomingHttpHeaders } from 'node:http2'
import { methodIndex, parseRuleId, reasonIndex, requestMetrics, type LocalReason } from '../../telemetry/request-metrics.ts'
import { logExchange, telemetry } from '../../telemetry/observe.ts'

const MAX_METHODS = 1000
const GRPC_PATH = /^\/((?:[A-Za-z_][A-Za-z_0-9]*\.)*[A-Za-z_][A-Za-z_0-9]*)\/([A-Za-z_][A-Za-z_0-9]*)$/
const POST = methodIndex('POST')
const seen = new Set<string>()

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/** Label text per (rule, path, code), built once: at most rules x MAX_METHODS x codes entries. */
const labelCache = new Map<string, string>()

/** The local-reply reason of a status the gateway made itself. */
const LOCAL_REASON: Record<number, LocalReason> = { 4: 'upstream_timeout', 7: 'forbidden', 8: 'rate_limited', 12: 'no_route', 13: 'internal', 14: 'upstream_error', 16: 'unauthorized' }

export interface GrpcCallInfo {
  /** The gateway answered, not the backend. */
  readonly local: boolean
  readonly clientIp: string
  readonly endpoint: string | undefined
  readonly startMs: number
}

export function recordGrpcCall(port: PortPlan, route: RoutePlan | undefined, pool: RuntimePool | undefined, headers: IncomingHttpHeaders, grpcCode: number, durationMs: number, info: GrpcCallInfo): void {
  if (!telemetry.metrics && telemetry.log === undefined) return
  const path = String(headers[':path'] ?? '')
  const seconds = durationMs / 1000
  const set = route ? requestMetrics.labelsFor(port, route, pool) : requestMetrics.unrouted(port, port.port)
  const reason = info.local ? (LOCAL_REASON[grpcCode] ?? 'policy') : ''
  if (telemetry.metrics) {
    set.record(POST, 200, info.local ? reasonIndex(reason) : 0, seconds, -1, 0, 0)
    requestMetrics.grpcCall(grpcLabels(route, path, grpcCode), seconds)
  }
  if (telemetry.log === undefined) return
  logExchange({
    startMs: info.startMs,
    durationMs,
    upstreamMs: -1,
    requestId: (headers['x-request-id'] as string | undefined) ?? undefined,
    clientIp: info.clientIp,
    method: 'POST',
    authority: String(headers[':authority'] ?? ''),
    path,
    protocol: 'HTTP/2',
    status: 200,
    bytesIn: 0,
    bytesOut: 0,
    labels: set,
    endpoint: info.endpoint,
    userAgent: (headers['user-agent'] as string | undefined) ?? undefined,
    reason,
    span: undefined,
    scheme: port.scheme,
    port: port.port,
    grpcStatus: grpcCode,
  })
}

function grpcLabels(route: RoutePlan | undefined, path: string, grpcCode: number): string {
  let known = false
  let m: RegExpExecArray | null = null
  if (route) {
    if (seen.has(path)) known = true
    else if ((m = GRPC_PATH.exec(path)) !== null && seen.size < MAX_METHODS) {
      seen.add(path)
      known = true
    }
  }
  const key = `${route?.id ?? ''}|${known ? path : ''}|${grpcCode}`
  let labels = labelCache.get(key)
  if (labels === undefined) {
    m ??= known ? GRPC_PATH.exec(path) : null
    const { route: routeName, rule } = route ? parseRuleId(route.id) : { route: '', rule: '' }
    const service = m ? m[1]! : 'other'
    const method = m ? m[2]! : 'other'
    labels = `route="${esc(routeName)}",rule="${esc(rule)}",service="${esc(service)}",method="${esc(method)}",grpc_code="${grpcCode}"`
    labelCache.set(key, labels)
  }
  return labels
}
