/**
 * What each data plane (a worker thread, or the main thread) observes per request: the
 * process-wide settings (request metrics on/off, access log, tracer) and the end-of-exchange
 * record both HTTP paths call. Configured once per process (configureTelemetry: app.ts, and
 * worker.ts from its init message).
 */
import { AccessLog } from './access-log.ts'
import { requestMetrics, type LabelSet } from './request-metrics.ts'
import { Tracer, type SpanContext } from './tracing.ts'

export interface TelemetryOptions {
  /** Request metrics (default on). */
  readonly requestMetrics?: boolean
  /** Access log to stdout (default off in the library; the CLI turns it on). */
  readonly accessLog?: boolean
  /** Keep one line in N (0..1, default 1). */
  readonly accessLogSample?: number
  /** Include query strings in the access log's path. */
  readonly accessLogQuery?: boolean
  /** OTLP/HTTP endpoint for spans; unset: spans are not made (traceparent passes through unchanged). */
  readonly otlpEndpoint?: string
  /** Sampling ratio of new traces (default 1). */
  readonly traceSampleRatio?: number
  readonly serviceName?: string
}

export const telemetry: { metrics: boolean; log: AccessLog | undefined; tracer: Tracer | undefined } = { metrics: true, log: undefined, tracer: undefined }

export function configureTelemetry(opts: TelemetryOptions | undefined, write?: (chunk: string) => void): void {
  telemetry.metrics = opts?.requestMetrics ?? true
  requestMetrics.enabled = telemetry.metrics
  telemetry.log?.flush()
  telemetry.log = opts?.accessLog ? new AccessLog({ sample: opts.accessLogSample, query: opts.accessLogQuery, ...(write ? { write } : {}) }) : undefined
  void telemetry.tracer?.stop()
  telemetry.tracer = opts?.otlpEndpoint ? new Tracer({ endpoint: opts.otlpEndpoint, ratio: opts.traceSampleRatio, serviceName: opts.serviceName }) : undefined
}

export function flushTelemetry(): Promise<void> {
  telemetry.log?.flush()
  return telemetry.tracer?.flush() ?? Promise.resolve()
}

/** One finished HTTP exchange, as both paths describe it (only read when logging or tracing). */
export interface ExchangeRecord {
  readonly startMs: number
  readonly durationMs: number
  /** -1: no upstream call. */
  readonly upstreamMs: number
  readonly requestId: string | undefined
  readonly clientIp: string
  readonly method: string
  readonly authority: string
  readonly path: string
  readonly protocol: string
  readonly status: number
  readonly bytesIn: number
  readonly bytesOut: number
  readonly labels: LabelSet
  readonly endpoint: string | undefined
  readonly userAgent: string | undefined
  readonly reason: string
  readonly span: SpanContext | undefined
  readonly scheme: string
  readonly port: number
  /** gRPC calls: the grpc-status the client got (the HTTP status is 200 either way). */
  readonly grpcStatus?: number
}

/** Access log line and span for a finished exchange (metrics are recorded by the caller). */
export function logExchange(r: ExchangeRecord): void {
  const log = telemetry.log
  if (log && log.keep(r.status)) {
    let path = r.path
    if (!log.query) {
      const q = path.indexOf('?')
      if (q >= 0) path = path.slice(0, q)
    }
    log.push({
      time: new Date(r.startMs).toISOString(),
      type: 'http',
      request_id: r.requestId ?? null,
      trace_id: r.span?.traceId ?? null,
      span_id: r.span?.spanId ?? null,
      client_ip: r.clientIp,
      method: r.method,
      authority: r.authority,
      path,
      protocol: r.protocol,
      status: r.status,
      bytes_in: r.bytesIn,
      bytes_out: r.bytesOut,
      duration_ms: round(r.durationMs),
      upstream_duration_ms: r.upstreamMs >= 0 ? round(r.upstreamMs) : null,
      gateway: r.labels.gateway || null,
      listener: r.labels.listener || null,
      route: r.labels.route || null,
      rule: r.labels.rule || null,
      backend: r.labels.backend || null,
      endpoint: r.endpoint ?? null,
      user_agent: r.userAgent ?? null,
      local_reply: r.reason || null,
      ...(r.grpcStatus !== undefined ? { grpc_status: r.grpcStatus } : {}),
    })
  }
  const tracer = telemetry.tracer
  if (tracer && r.span?.sampled) {
    const q = r.path.indexOf('?')
    tracer.end({
      ctx: r.span,
      name: r.labels.route ? `${r.method} ${r.labels.route}` : r.method,
      startMs: r.startMs,
      endMs: r.startMs + r.durationMs,
      status: r.status,
      attributes: {
        'http.request.method': r.method,
        'url.path': q >= 0 ? r.path.slice(0, q) : r.path,
        'url.scheme': r.scheme,
        'server.address': r.authority,
        'server.port': r.port,
        'client.address': r.clientIp,
        'network.protocol.version': r.protocol.replace('HTTP/', ''),
        'http.response.status_code': r.status,
        'http.request.body.size': r.bytesIn,
        'http.response.body.size': r.bytesOut,
        ...(r.userAgent ? { 'user_agent.original': r.userAgent } : {}),
        ...(r.labels.route ? { 'http.route': r.labels.route, 'portico.rule': r.labels.rule } : {}),
        ...(r.labels.gateway ? { 'portico.gateway': r.labels.gateway, 'portico.listener': r.labels.listener } : {}),
        ...(r.labels.backend ? { 'portico.backend': r.labels.backend } : {}),
        ...(r.endpoint ? { 'server.upstream.address': r.endpoint } : {}),
        ...(r.requestId ? { 'portico.request_id': r.requestId } : {}),
        ...(r.reason ? { 'portico.local_reply': r.reason } : {}),
      },
    })
  }
}

/** An L4 connection or WebSocket session at its end. */
export function logStream(entry: { type: 'tcp' | 'udp' | 'tls' | 'websocket'; startMs: number; clientIp: string; bytesIn: number; bytesOut: number; route: string; backend: string; endpoint?: string; requestId?: string; traceId?: string; messages?: number; reason?: string }): void {
  const log = telemetry.log
  if (!log || !log.keep(0)) return
  log.push({
    time: new Date(entry.startMs).toISOString(),
    type: entry.type,
    ...(entry.requestId !== undefined ? { request_id: entry.requestId } : {}),
    ...(entry.traceId !== undefined ? { trace_id: entry.traceId } : {}),
    client_ip: entry.clientIp,
    bytes_in: entry.bytesIn,
    bytes_out: entry.bytesOut,
    duration_ms: round(Date.now() - entry.startMs),
    route: entry.route || null,
    backend: entry.backend || null,
    endpoint: entry.endpoint ?? null,
    ...(entry.messages !== undefined ? { messages: entry.messages } : {}),
    ...(entry.reason ? { close_reason: entry.reason } : {}),
  })
}

const round = (ms: number) => Math.round(ms * 1000) / 1000
