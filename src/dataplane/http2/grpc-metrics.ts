/**
 * Metrics per gRPC method: every call counts in portico_http_requests_total (its rule and backend,
 * POST 200, like any request) and in portico_grpc_calls_total{route, rule, service, method,
 * grpc_code} with its duration (telemetry/request-metrics.ts renders them).
 *
 * Cardinality: service and method come from the path a client chose, so only well-formed gRPC
 * names of routed calls are labels, and at most MAX_METHODS distinct ones per process; the rest
 * count as service="other", method="other".
 */
import type { PortPlan, RoutePlan } from '../snapshot.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import { methodIndex, parseRuleId, reasonIndex, requestMetrics } from '../../telemetry/request-metrics.ts'
import { telemetry } from '../../telemetry/observe.ts'

const MAX_METHODS = 1000
const GRPC_PATH = /^\/((?:[A-Za-z_][A-Za-z_0-9]*\.)*[A-Za-z_][A-Za-z_0-9]*)\/([A-Za-z_][A-Za-z_0-9]*)$/
const POST = methodIndex('POST')
const seen = new Set<string>()

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/** Label text per (rule, path, code), built once: at most rules x MAX_METHODS x codes entries. */
const labelCache = new Map<string, string>()

export function recordGrpcCall(port: PortPlan, route: RoutePlan | undefined, pool: RuntimePool | undefined, path: string, grpcCode: number, durationMs: number): void {
  if (!telemetry.metrics) return
  const seconds = durationMs / 1000
  const set = route ? requestMetrics.labelsFor(port, route, pool) : requestMetrics.unrouted(port, port.port)
  const local = pool === undefined && grpcCode !== 0
  set.record(POST, 200, local ? reasonIndex(route ? 'policy' : 'no_route') : 0, seconds, -1, 0, 0)
  requestMetrics.grpcCall(grpcLabels(route, path, grpcCode), seconds)
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
