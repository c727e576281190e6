/**
 * Limits and timeouts of the HTTP data plane, their defaults, and the parsers that turn a flag
 * or an annotation into a number. Defaults sit in the range nginx and Envoy ship.
 *
 * Measured on Bun 1.4.5, and why some limits are Bun's rather than ours:
 * - Bun's parser rejects a request head over 16 KiB with 431 before any JS runs (its
 *   `--max-http-header-size`, settable through BUN_OPTIONS). maxHeaderBytes is checked by
 *   Portico only below that; a request line longer than the head limit is Bun's 431, not 414.
 * - Bun closes a connection whose request head is not complete ~10 s after it opened (12 s
 *   with its 4 s timer tick), whatever `idleTimeout` says and however slowly bytes dribble in:
 *   that is the header-read deadline, it is fixed, and it closes without a 408.
 * - Bun's `idleTimeout` also cuts a request whose response is not ready yet, and every byte
 *   received resets it (a dribbled body never expires): the handler therefore stretches it while
 *   waiting for a backend (responseWaitSeconds), and request-guard.ts adds a total body deadline.
 */

import { parseByteSize } from '../../translate/byte-size.ts'

export interface HttpLimits {
  /** Longest request-target (path + query) in bytes; longer → 414. */
  readonly maxRequestTargetBytes: number
  /** Largest header block (names + values) in bytes; larger → 431. Bun's own 16 KiB applies first. */
  readonly maxHeaderBytes: number
  /** Largest request body in bytes, per route overridable (portico.dev/max-body-size); 0 = unlimited. → 413 */
  readonly maxBodyBytes: number
  /** Requests in flight per listener port before new ones get 503 + Connection: close; 0 = unlimited. */
  readonly maxConcurrentRequests: number
  /** A request head must arrive within this long (slowloris → 408 and close); also the wait for a first request. 0 = none. */
  readonly headerTimeoutMs: number
  /** Keep-alive idle timeout between requests (Bun's idleTimeout), 1-255 s. */
  readonly keepAliveIdleSeconds: number
  /** Default idle timeout of streamed bodies (SSE, uploads); routes override it with portico.dev/stream-idle-timeout. 0 = none. */
  readonly streamIdleSeconds: number
  /** Total time a client gets to send a request body; slower → 408 and close. 0 = none. */
  readonly bodyTimeoutMs: number
  /** Wait for response headers when a route sets no Gateway API timeout; → 504. 0 = none. */
  readonly upstreamTimeoutMs: number
  /**
   * Request bodies up to this size are received whole before the backend is called, larger ones
   * stream (BackendTrafficPolicy requestBuffer sets it per route, and refuses larger ones). 0 = stream all.
   */
  readonly requestBufferBytes: number
  /** Bytes all connections of the process (every worker) may hold buffered that way; beyond it bodies stream. 0 = no cap. */
  readonly requestBufferTotalBytes: number
  /** Client connections open on the HTTP listeners of the process (every worker); more are closed at accept. 0 = no cap. */
  readonly maxConnections: number
  /** Per listener port (all workers), where no ClientTrafficPolicy connectionLimit is set. 0 = no cap. */
  readonly maxListenerConnections: number
  /** Connections open from one client address (all workers). 0 = no cap. */
  readonly maxConnectionsPerClient: number
  /** New connections accepted per second (all workers; one second's worth may come at once). 0 = no limit. */
  readonly maxAcceptRate: number
  /** Shed new requests (503 + Retry-After) while the event loop lags more than this. 0 = never. */
  readonly shedEventLoopLagMs: number
  /** Shed new requests while the process's resident memory is above this. 0 = never. */
  readonly shedMemoryBytes: number
}

export const DEFAULT_LIMITS: HttpLimits = {
  // nginx large_client_header_buffers 8k; Envoy's default max request headers 60 KiB; we take 32 KiB.
  maxRequestTargetBytes: 8 * 1024,
  maxHeaderBytes: 32 * 1024,
  // nginx ships 1 MiB (too small for an API gateway in front of uploads), Envoy and Kong none:
  // 100 MiB bounds abuse and still fits ordinary uploads; routes raise or lower it.
  maxBodyBytes: 100 * 1024 * 1024,
  maxConcurrentRequests: 10_000,
  // nginx client_header_timeout 60 s; the issue asks ≤ 10 s, Bun's own fixed deadline is ~10 s.
  headerTimeoutMs: 10_000,
  // nginx keepalive_timeout 75 s, Envoy 1 h: both too generous for an edge; the issue asks ≤ 15 s.
  keepAliveIdleSeconds: 15,
  // Quiet SSE streams commonly ping every 30-60 s; Envoy's stream idle timeout is 5 min.
  streamIdleSeconds: 120,
  bodyTimeoutMs: 300_000,
  // nginx proxy_read_timeout 60 s (Envoy's route timeout is 15 s, too short for reports and exports).
  upstreamTimeoutMs: 60_000,
  // nginx buffers every body (client_body_buffer_size 16k in memory, the rest in a temp file);
  // we keep bodies in memory only, so only small ones by default: most API requests fit.
  requestBufferBytes: 64 * 1024,
  // 1,000 connections each holding a full 64 KiB buffer; more than that stream.
  requestBufferTotalBytes: 64 * 1024 * 1024,
  // Connection caps are off by default, as in nginx and Envoy: the file-descriptor limit is the
  // cap, and a per-address cap would refuse clients behind one NAT. Set them for an edge.
  maxConnections: 0,
  maxListenerConnections: 0,
  maxConnectionsPerClient: 0,
  maxAcceptRate: 0,
  // Off by default (Envoy's overload manager is too): a threshold depends on the deployment.
  shedEventLoopLagMs: 0,
  shedMemoryBytes: 0,
}

/** Bun's request head limit (--max-http-header-size), read from how this process was started. */
export function bunHeaderLimit(env: Record<string, string | undefined> = process.env, argv: readonly string[] = process.execArgv): number {
  const flags = [...argv, ...(env.BUN_OPTIONS ?? '').split(/\s+/)]
  for (const flag of flags) {
    const m = /^--max-http-header-size=(\d+)$/.exec(flag)
    if (m) return Number(m[1])
  }
  return 16 * 1024
}

/** Defaults overlaid with what was set; non-finite or negative numbers are ignored. */
export function resolveLimits(partial: Partial<HttpLimits> = {}): HttpLimits {
  const out: Record<string, number> = { ...DEFAULT_LIMITS }
  for (const [key, value] of Object.entries(partial)) {
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) out[key] = value
  }
  out.keepAliveIdleSeconds = Math.min(255, Math.max(1, out.keepAliveIdleSeconds!))
  return out as unknown as HttpLimits
}

/**
 * Seconds Bun's idle timer must allow while a request waits for its response: Bun counts that
 * wait as idleness. The route's Gateway API timeouts (or the default upstream timeout) already
 * bound the wait with a proper 504, so Bun's timer only has to outlast them. 0 = switch it off
 * (the wait is longer than Bun's 255 s maximum, or unbounded by configuration).
 */
export function responseWaitSeconds(requestTimeoutMs: number | undefined, backendTimeoutMs: number | undefined, attempts: number, limits: HttpLimits): number {
  let waitMs = requestTimeoutMs
  if (waitMs === undefined && backendTimeoutMs !== undefined) waitMs = backendTimeoutMs * attempts
  if (waitMs === undefined) waitMs = limits.upstreamTimeoutMs
  if (waitMs <= 0) return 0
  const seconds = Math.ceil(waitMs / 1000) + 2
  if (seconds > 255) return 0
  return Math.max(seconds, limits.keepAliveIdleSeconds)
}

/** How each limit is set from the command line or the environment (src/cli.ts). */
export interface LimitFlag {
  readonly flag: string
  readonly env: string
  readonly key: keyof HttpLimits
  readonly unit: 'bytes' | 'seconds' | 'count'
  readonly help: string
}

export const LIMIT_FLAGS: readonly LimitFlag[] = [
  { flag: '--max-body-size', env: 'MAX_BODY_SIZE', key: 'maxBodyBytes', unit: 'bytes', help: 'largest request body, e.g. 10Mi; 0 = unlimited (default 100Mi; per route: portico.dev/max-body-size)' },
  { flag: '--max-header-size', env: 'MAX_HEADER_SIZE', key: 'maxHeaderBytes', unit: 'bytes', help: "largest request header block (default 32Ki; Bun's parser stops at 16Ki unless BUN_OPTIONS=--max-http-header-size=N)" },
  { flag: '--max-uri-size', env: 'MAX_URI_SIZE', key: 'maxRequestTargetBytes', unit: 'bytes', help: 'longest request-target, path and query (default 8Ki)' },
  { flag: '--max-concurrent-requests', env: 'MAX_CONCURRENT_REQUESTS', key: 'maxConcurrentRequests', unit: 'count', help: 'requests in flight per listener before 503 + Connection: close; 0 = unlimited (default 10000)' },
  { flag: '--keepalive-timeout', env: 'KEEPALIVE_TIMEOUT', key: 'keepAliveIdleSeconds', unit: 'seconds', help: 'idle keep-alive connections are closed after S seconds, 1-255 (default 15)' },
  { flag: '--stream-idle-timeout', env: 'STREAM_IDLE_TIMEOUT', key: 'streamIdleSeconds', unit: 'seconds', help: 'streamed bodies (SSE, uploads) silent for S seconds are cut; 0 = never (default 120; per route: portico.dev/stream-idle-timeout)' },
  { flag: '--header-timeout', env: 'HEADER_TIMEOUT', key: 'headerTimeoutMs', unit: 'seconds', help: 'a client gets S seconds to send a request head, else 408 and close; 0 = none (default 10)' },
  { flag: '--body-timeout', env: 'BODY_TIMEOUT', key: 'bodyTimeoutMs', unit: 'seconds', help: 'a client gets S seconds to send a whole request body, else 408; 0 = none (default 300)' },
  { flag: '--request-buffer-size', env: 'REQUEST_BUFFER_SIZE', key: 'requestBufferBytes', unit: 'bytes', help: 'request bodies up to this size are received whole before the backend is called (slow clients hold no backend connection); larger ones stream; 0 = stream all (default 64Ki; per route: BackendTrafficPolicy requestBuffer)' },
  { flag: '--request-buffer-total', env: 'REQUEST_BUFFER_TOTAL', key: 'requestBufferTotalBytes', unit: 'bytes', help: 'request body bytes the process (all workers) may hold buffered at once; beyond it bodies stream; 0 = no cap (default 64Mi)' },
  { flag: '--max-connections', env: 'MAX_CONNECTIONS', key: 'maxConnections', unit: 'count', help: 'client connections open on HTTP listeners, all workers together; more are closed at accept; 0 = no cap (default 0)' },
  { flag: '--max-listener-connections', env: 'MAX_LISTENER_CONNECTIONS', key: 'maxListenerConnections', unit: 'count', help: 'the same per listener port, where no ClientTrafficPolicy connectionLimit is set (default 0)' },
  { flag: '--max-connections-per-client', env: 'MAX_CONNECTIONS_PER_CLIENT', key: 'maxConnectionsPerClient', unit: 'count', help: 'connections open from one client address, all workers together (default 0)' },
  { flag: '--max-accept-rate', env: 'MAX_ACCEPT_RATE', key: 'maxAcceptRate', unit: 'count', help: 'new connections accepted per second, all workers together; more are closed at accept (default 0: no limit)' },
  { flag: '--shed-event-loop-lag', env: 'SHED_EVENT_LOOP_LAG', key: 'shedEventLoopLagMs', unit: 'seconds', help: "answer new requests 503 + Retry-After while a worker's event loop lags more than S seconds, e.g. 0.5 (default 0: never)" },
  { flag: '--shed-memory', env: 'SHED_MEMORY', key: 'shedMemoryBytes', unit: 'bytes', help: 'the same while the process resident memory is above SIZE, e.g. 1Gi (default 0: never)' },
  { flag: '--upstream-timeout', env: 'UPSTREAM_TIMEOUT', key: 'upstreamTimeoutMs', unit: 'seconds', help: 'wait for response headers when a route sets no timeout, else 504; 0 = none (default 60)' },
]

/**
 * Limits from raw flag values (flag name → text), falling back to the environment. Throws an
 * Error naming the flag for a value that does not parse.
 */
export function parseLimitFlags(raw: ReadonlyMap<string, string>, env: Record<string, string | undefined>): Partial<HttpLimits> {
  const out: Partial<Record<keyof HttpLimits, number>> = {}
  for (const spec of LIMIT_FLAGS) {
    const text = raw.get(spec.flag) ?? env[spec.env]
    if (text === undefined || text === '') continue
    out[spec.key] = parseLimitValue(spec, text)
  }
  return out
}

function parseLimitValue(spec: LimitFlag, text: string): number {
  if (spec.unit === 'bytes') {
    const bytes = parseByteSize(text)
    if (bytes === undefined) throw new Error(`${spec.flag} must be a size like 1048576, 512Ki or 10Mi, got ${JSON.stringify(text)}`)
    return bytes
  }
  if (!/^\d+(\.\d+)?$/.test(text)) throw new Error(`${spec.flag} must be a non-negative number, got ${JSON.stringify(text)}`)
  const n = Number(text)
  if (spec.key === 'keepAliveIdleSeconds' && (n < 1 || n > 255)) throw new Error(`${spec.flag} must be 1-255 seconds (Bun's idle timer), got ${JSON.stringify(text)}`)
  if (spec.unit === 'count') {
    if (!Number.isInteger(n)) throw new Error(`${spec.flag} must be an integer, got ${JSON.stringify(text)}`)
    return n
  }
  // bodyTimeoutMs and upstreamTimeoutMs are kept in milliseconds; the flags say seconds.
  return spec.key.endsWith('Ms') ? Math.round(n * 1000) : n
}

/**
 * A port's limits: the global ones with its ClientTrafficPolicy connection settings laid over
 * (idleTimeoutMs replaces the keep-alive idle timeout, requestReceivedTimeoutMs the header
 * timeout). The same object back when the port sets neither, so the hot path sees no change.
 */
export function portLimits(base: HttpLimits, settings: { readonly idleTimeoutMs?: number; readonly requestReceivedTimeoutMs?: number } | undefined): HttpLimits {
  if (settings?.idleTimeoutMs === undefined && settings?.requestReceivedTimeoutMs === undefined) return base
  return {
    ...base,
    // The front's own timer: not bound by Bun's 1-255 s idleTimeout range.
    keepAliveIdleSeconds: settings.idleTimeoutMs === undefined ? base.keepAliveIdleSeconds : settings.idleTimeoutMs / 1000,
    headerTimeoutMs: settings.requestReceivedTimeoutMs ?? base.headerTimeoutMs,
  }
}
