/**
 * Why an upstream exchange failed, in the terms the proxy maps to a status:
 * refused → 502, reset (closed/reset/garbled before a complete response head) → 503,
 * timeout → 504, aborted → the caller gave up (client gone).
 */
export type UpstreamFailure = 'refused' | 'reset' | 'timeout' | 'aborted'

export class UpstreamError extends Error {
  /** How many times the request was written to a backend before this failure (stale-connection retry counts). */
  attempts = 1

  constructor(
    readonly kind: UpstreamFailure,
    message: string,
    /**
     * The connection came from the idle pool and closed before sending a single response byte:
     * most likely the server dropped it while idle, so a replay on a fresh connection is safe
     * for idempotent requests.
     */
    readonly stale = false,
    readonly code?: string,
  ) {
    super(message)
  }
}

export function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err) return String((err as { code: unknown }).code)
  return err instanceof Error ? err.message : String(err)
}
