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

export interface HttpLimits {
  /** Longest request-target (path + query) in bytes; longer → 414. */
  readonly maxRequestTargetBytes: number
  /** Largest header block (names + values) in bytes; larger → 431. Bun's own 16 KiB applies first. */
  readonly maxHeaderBytes: number
  /** Largest request body in bytes, per route overridable (portico.dev/max-body-size); 0 = unlimited. → 413 */
  readonly maxBodyBytes: number
  /** Requests in flight per listener port before new ones get 503 + Connection: close; 0 = unlimited. */
  readonly maxConcurrentRequests: number
  /** Keep-alive idle timeout between requests (Bun's idleTimeout), 1-255 s. */
  readonly keepAliveIdleSeconds: number
  /** Default idle timeout of streamed bodies (SSE, uploads); routes override it with portico.dev/stream-idle-timeout. 0 = none. */
  readonly streamIdleSeconds: number
  /** Total time a client gets to send a request body; slower → 408 and close. 0 = none. */
  readonly bodyTimeoutMs: number
  /** Wait for response headers when a route sets no Gateway API timeout; → 504. 0 = none. */
  readonly upstreamTimeoutMs: number
}

export const DEFAULT_LIMITS: HttpLimits = {
  // nginx large_client_header_buffers 8k; Envoy's default max request headers 60 KiB; we take 32 KiB.
  maxRequestTargetBytes: 8 * 1024,
  maxHeaderBytes: 32 * 1024,
  // nginx ships 1 MiB (too small for an API gateway in front of uploads), Envoy and Kong none:
  // 100 MiB bounds abuse and still fits ordinary uploads; routes raise or lower it.
  maxBodyBytes: 100 * 1024 * 1024,
  maxConcurrentRequests: 10_000,
  // nginx keepalive_timeout 75 s, Envoy 1 h: both too generous for an edge; the issue asks ≤ 15 s.
  keepAliveIdleSeconds: 15,
  // Quiet SSE streams commonly ping every 30-60 s; Envoy's stream idle timeout is 5 min.
  streamIdleSeconds: 120,
  bodyTimeoutMs: 300_000,
  // nginx proxy_read_timeout 60 s (Envoy's route timeout is 15 s, too short for reports and exports).
  upstreamTimeoutMs: 60_000,
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
