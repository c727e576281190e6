/**
 * W3C Trace Context (traceparent / tracestate) and a gateway span per request, exported as
 * OTLP/HTTP JSON (`POST <endpoint>/v1/traces`). The encoding is written here rather than taken
 * from the OpenTelemetry JS SDK: the SDK's tracer, context manager and exporter packages add
 * several MB and a promise chain per span under Bun, where a span here is one object pushed on
 * an array. Attribute names follow the OpenTelemetry HTTP semantic conventions.
 *
 * Sampling: parent-based (an incoming sampled flag is obeyed), else the ratio. Export is batched
 * (every second or 512 spans); at most 4096 spans wait, the rest are dropped and counted; a
 * request never waits on the exporter, and an exporter that is down costs one failed fetch per
 * batch.
 */

export interface TracingOptions {
  /** OTLP/HTTP base URL (".../v1/traces" is appended unless already there). */
  readonly endpoint: string
  /** Ratio of new traces (no incoming traceparent) that are sampled: 0..1 (default 1). */
  readonly ratio?: number
  readonly serviceName?: string
}

export interface SpanContext {
  readonly traceId: string
  /** The incoming parent span id ('' for a new trace). */
  readonly parentId: string
  /** The gateway span's id: the parent id sent upstream. */
  readonly spanId: string
  readonly sampled: boolean
  readonly tracestate: string | null
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const rnd = new Uint8Array(24 * 64)
let rndAt = rnd.length
function randomHex(bytes: number): string {
  if (rndAt + bytes > rnd.length) {
    crypto.getRandomValues(rnd)
    rndAt = 0
  }
  let s = ''
  for (let i = 0; i < bytes; i++) s += HEX[rnd[rndAt++]!]
  return s
}
export const newTraceId = (): string => {
  const id = randomHex(16)
  return id === '00000000000000000000000000000000' ? newTraceId() : id
}
export const newSpanId = (): string => {
  const id = randomHex(8)
  return id === '0000000000000000' ? newSpanId() : id
}

/** The span context of a request: child of a valid incoming traceparent, else a new trace. */
export function startContext(traceparent: string | null | undefined, tracestate: string | null | undefined, ratio: number): SpanContext {
  if (traceparent) {
    const m = TRACEPARENT.exec(traceparent.trim().toLowerCase())
    if (m && m[1] !== 'ff' && m[2] !== '00000000000000000000000000000000' && m[3] !== '0000000000000000') {
      return { traceId: m[2]!, parentId: m[3]!, spanId: newSpanId(), sampled: (parseInt(m[4]!, 16) & 1) === 1, tracestate: tracestate ?? null }
    }
  }
  return { traceId: newTraceId(), parentId: '', spanId: newSpanId(), sampled: ratio >= 1 || Math.random() < ratio, tracestate: null }
}

export function traceparentOf(ctx: SpanContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? '01' : '00'}`
}

export interface FinishedSpan {
  readonly ctx: SpanContext
  readonly name: string
  readonly startMs: number
  readonly endMs: number
  readonly status: number
  readonly attributes: Readonly<Record<string, string | number>>
}

const MAX_QUEUE = 4096

export class Tracer {
  readonly ratio: number
  readonly url: string
  readonly serviceName: string
  dropped = 0
  exported = 0
  failures = 0
  #queue: FinishedSpan[] = []
  #timer: ReturnType<typeof setInterval>
  #inFlight = false

  constructor(opts: TracingOptions) {
    this.ratio = opts.ratio ?? 1
    const base = opts.endpoint.replace(/\/+$/, '')
    this.url = base.endsWith('/v1/traces') ? base : `${base}/v1/traces`
    this.serviceName = opts.serviceName ?? 'portico'
    this.#timer = setInterval(() => void this.flush(), 1000)
    this.#timer.unref?.()
  }

  start(traceparent: string | null | undefined, tracestate: string | null | undefined): SpanContext {
    return startContext(traceparent, tracestate, this.ratio)
  }

  end(span: FinishedSpan): void {
    if (!span.ctx.sampled) return
    if (this.#queue.length >= MAX_QUEUE) {
      this.dropped++
      return
    }
    this.#queue.push(span)
    if (this.#queue.length >= 512) void this.flush()
  }

  /** Send what is queued (one request at a time; never awaited by the data path). */
  async flush(): Promise<void> {
    if (this.#inFlight || this.#queue.length === 0) return
    const batch = this.#queue
    this.#queue = []
    this.#inFlight = true
    try {
      const res = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(otlpJson(batch, this.serviceName)), signal: AbortSignal.timeout(5000) })
      if (res.ok) this.exported += batch.length
      else {
        this.failures++
        this.dropped += batch.length
      }
      await res.arrayBuffer().catch(() => {})
    } catch {
      this.failures++
      this.dropped += batch.length
    } finally {
      this.#inFlight = false
    }
  }

  stop(): Promise<void> {
    clearInterval(this.#timer)
    return this.flush()
  }
}

const nanos = (ms: number) => (BigInt(Math.round(ms * 1000)) * 1000n).toString()

function attr(key: string, value: string | number) {
  return typeof value === 'number' ? { key, value: Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value } } : { key, value: { stringValue: value } }
}

/** OTLP/HTTP JSON (ExportTraceServiceRequest): ids as hex, times as decimal strings of ns. */
export function otlpJson(spans: readonly FinishedSpan[], serviceName: string) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', serviceName)] },
        scopeSpans: [
          {
            scope: { name: 'portico' },
            spans: spans.map((s) => ({
              traceId: s.ctx.traceId,
              spanId: s.ctx.spanId,
              ...(s.ctx.parentId ? { parentSpanId: s.ctx.parentId } : {}),
              ...(s.ctx.tracestate ? { traceState: s.ctx.tracestate } : {}),
              name: s.name,
              kind: 2, // SPAN_KIND_SERVER
              startTimeUnixNano: nanos(s.startMs),
              endTimeUnixNano: nanos(s.endMs),
              attributes: Object.entries(s.attributes).map(([k, v]) => attr(k, v)),
              status: { code: s.status >= 500 ? 2 : 0 },
            })),
          },
        ],
      },
    ],
  }
}
