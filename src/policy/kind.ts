/**
 * The policy contract, data only: what translate/ produces and the data plane compiles.
 *
 * A policy *feature* (one top-level field of a policy CRD such as ClientTrafficPolicy's
 * `clientIPDetection`, or a core HTTPRoute filter) is the unit of precedence and of runtime
 * code. Each policy folder (src/policy/<name>/) declares the features it contributes by
 * augmenting PolicySpecs:
 *
 *   declare module '../kind.ts' { interface PolicySpecs { requestID: RequestIdSpec } }
 *
 * Translators (src/policy/translators.ts) never load runtime code; runtimes
 * (src/policy/runtimes.ts) never read Kubernetes objects. Specs are plain data so golden
 * files and msgpackr (snapshots sent to worker threads) keep working.
 */

/**
 * Request phases, in the order a chain runs them. A policy declares its phase; within a phase
 * the runtime's `order` breaks ties, then manifest order (core filters keep theirs).
 *  - client:    who the client is (client IP detection, request ID)
 *  - authn:     who is calling (API key, basic, JWT, OIDC, external auth)
 *  - authz:     may they (IP rules, claims)
 *  - ratelimit: how often (local and global limits)
 *  - transform: the upstream request (header modifiers, rewrites, mirrors, CORS preflight)
 *  - route:     which backend (A/B assignment, sticky sessions)
 *  - upstream:  how to call it (timeouts, retries, circuit breaking)
 *  - response:  the response head and body (response headers, compression, CORS headers)
 */
export const PHASES = ['client', 'authn', 'authz', 'ratelimit', 'transform', 'route', 'upstream', 'response'] as const
export type Phase = (typeof PHASES)[number]

/** Feature name → its IR spec. Augmented by each policy folder (declaration merging). */
export interface PolicySpecs {}

export type PolicyName = keyof PolicySpecs & string

/** One resolved policy feature, as it travels in the IR. */
export interface PolicyIr<K extends PolicyName = PolicyName> {
  readonly name: K
  /**
   * Identity of the policy object that supplied it plus the feature:
   * "clienttrafficpolicy/<ns>/<name>#clientIPDetection". The state key (token buckets,
   * circuit counters survive snapshot swaps under it) and the metric label.
   */
  readonly id: string
  readonly spec: PolicySpecs[K]
  /** Keys of Snapshot.pools the feature calls (ext-auth, JWKS, OIDC, mirrors): compiled with the rule. */
  readonly pools?: readonly string[]
}

/**
 * Connection-level settings of one listener port (ClientTrafficPolicy on a Gateway or
 * listener). One port may hold several listeners; they must agree (translate reports a
 * conflict on the policy otherwise, and the port keeps the Gateway-wide value).
 */
export interface ConnectionSettings {
  /** Expect a PROXY protocol v1 or v2 header first on every connection. */
  readonly proxyProtocol?: { readonly optional: boolean }
  /** Most concurrent client connections on the port (per worker); beyond it new ones are closed at once. */
  readonly maxConnections?: number
  /** Close a client connection idle this long (HTTP keep-alive, TCP both directions quiet). */
  readonly idleTimeoutMs?: number
  /** HTTP: whole request head must arrive within this (ClientTrafficPolicy timeout.http.requestReceivedTimeout). */
  readonly requestReceivedTimeoutMs?: number
  /** HTTPS ports: protocol settings of the TLS the front terminates (ClientTrafficPolicy tls). */
  readonly tls?: TlsProtocolSettings
  /** HTTP/HTTPS ports: edits to every response head sent to clients (ClientTrafficPolicy headers.lateResponseHeaders). */
  readonly lateResponseHeaders?: ResponseHeaderEdits
}

/**
 * A Gateway API HTTPHeaderFilter for responses, applied last (after every filter and policy):
 * `remove` first, then `set` (replaces every field of that name), then `add` (one more field).
 * Names are never framing or hop-by-hop fields (the translator refuses them).
 */
export interface ResponseHeaderEdits {
  readonly set: readonly (readonly [string, string])[]
  readonly add: readonly (readonly [string, string])[]
  /** Lower-case. */
  readonly remove: readonly string[]
}

/** ClientTrafficPolicy `tls`, in node:tls spelling (dataplane/http/tls/contexts.ts applies it). */
export interface TlsProtocolSettings {
  /** 'TLSv1' .. 'TLSv1.3'; default TLSv1.2. */
  readonly minVersion?: string
  readonly maxVersion?: string
  /** OpenSSL cipher list (':'-separated) for TLS 1.2 and below. */
  readonly ciphers?: string
  /** ':'-separated groups, e.g. 'X25519:P-256'. */
  readonly ecdhCurves?: string
  /** ALPN protocols offered, in preference order; default h2, http/1.1. */
  readonly alpnProtocols?: readonly string[]
}
