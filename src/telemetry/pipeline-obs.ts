/**
 * Telemetry of the pipeline path (http/handler.ts: the inner Bun.serve and HTTPS ports). Timed
 * to the response head (a streamed body's end is not awaited: that would cost a stream wrapper
 * per request); response bytes are the Content-Length when there is one.
 */
import type { PortPlan, RoutePlan } from '../dataplane/snapshot.ts'
import type { RequestState } from '../dataplane/http/context.ts'
import { LOCAL_REASONS, methodIndex, reasonForStatus, reasonIndex, requestMetrics, type MetricsBackend } from './request-metrics.ts'
import { logExchange, telemetry } from './observe.ts'
import type { SpanContext } from './tracing.ts'

export interface PipelineObs {
  t0: number
  tUp: number
  rule: RoutePlan | undefined
  /** The backend label's source: the pool picked, or a Composite. */
  pool: MetricsBackend | undefined
  /** A policy verdict, direct response or redirect answered. */
  local: boolean
  state: RequestState | undefined
  span: SpanContext | undefined
}

export function observePipeline(obs: PipelineObs, req: Request, res: Response | undefined, port: PortPlan, clientIp: string, host: string | null, localError: boolean): void {
  const end = performance.now()
  const status = res === undefined ? 101 : res.status
  const set = obs.rule ? requestMetrics.labelsFor(port, obs.rule, obs.pool) : requestMetrics.unrouted(port, port.port)
  const reason = localError || obs.local ? reasonIndex(obs.rule ? (status === 503 && res?.headers.has('x-portico-overload') ? 'circuit_open' : obs.local && status < 400 ? 'direct_response' : reasonForStatus(status)) : 'no_route') : 0
  const upMs = obs.tUp !== 0 && !obs.local ? end - obs.tUp : -1
  const durMs = end - obs.t0
  const reqLen = Number(req.headers.get('content-length') ?? 0) || 0
  const resLen = Number(res?.headers.get('content-length') ?? 0) || 0
  if (telemetry.metrics) set.record(methodIndex(req.method), status, reason, durMs / 1000, upMs < 0 ? -1 : upMs / 1000, reqLen, resLen)
  if (telemetry.log === undefined && obs.span === undefined) return
  const url = req.url
  const schemeEnd = url.indexOf('://')
  const pathStart = url.indexOf('/', schemeEnd < 0 ? 0 : schemeEnd + 3)
  logExchange({
    startMs: Date.now() - durMs,
    durationMs: durMs,
    upstreamMs: upMs,
    requestId: obs.state?.requestId ?? req.headers.get('x-request-id') ?? undefined,
    clientIp,
    method: req.method,
    authority: host ?? '',
    path: pathStart < 0 ? '/' : url.slice(pathStart),
    protocol: 'HTTP/1.1',
    status,
    bytesIn: reqLen,
    bytesOut: resLen,
    labels: set,
    endpoint: undefined,
    userAgent: req.headers.get('user-agent') ?? undefined,
    reason: LOCAL_REASONS[reason] ?? '',
    span: obs.span,
    scheme: port.scheme,
    port: port.port,
  })
}
