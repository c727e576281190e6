/** HTTP facts every path of the data plane shares (the front, the pipeline, the upstream clients). */

/** RFC 9110 and PATCH: a backend reset on these counts against its passive health (an unknown method may be why it reset). */
export const STANDARD_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH'])

/** Idempotent methods (RFC 9110 §9.2.2): replayed once on a fresh connection when a pooled one was closed under the request. */
export const REPLAYABLE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/**
 * Fields by which a client declares that repeating its request is harmless whatever the method
 * (draft-ietf-httpapi-idempotency-key-header; Go's net/http treats both as making a request replayable).
 */
export const IDEMPOTENCY_KEY_FIELDS: readonly string[] = ['idempotency-key', 'x-idempotency-key']

/**
 * May this request be sent again after a pooled connection closed under it before any response
 * byte (the backend may have received it)? RFC 9110 §9.2.2: only when its method is idempotent
 * or the client said repeating it is safe. `fields.has` answers for lower-case names.
 */
export function isReplayable(method: string, fields: { has(name: string): boolean }): boolean {
  if (REPLAYABLE_METHODS.has(method)) return true
  for (const name of IDEMPOTENCY_KEY_FIELDS) if (fields.has(name)) return true
  return false
}

/** How long a backend WebSocket handshake may take when the route sets no timeout. */
export const WS_HANDSHAKE_TIMEOUT_MS = 10_000

/** RFC 6455 §4.1: a GET whose Upgrade field names websocket (`upgrade` is that field's value). */
export function isWebSocketUpgrade(method: string, upgrade: string | null): boolean {
  if (method !== 'GET' || upgrade === null) return false
  return upgrade.toLowerCase().split(',').some((t) => t.trim() === 'websocket')
}
