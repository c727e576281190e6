/**
 * The intermediate representation: what the data plane needs, already resolved.
 *
 * Data only (no RegExp, no functions, no Maps) so it serialises to YAML for golden files,
 * diffs cleanly, and packs with msgpackr. The data plane compiles it into runtime objects
 * (matchers, pickers) once per snapshot; the hot path never reads Kubernetes objects.
 */

/** Where an IR element came from, so logs and metrics point back at a manifest. */
import type { ConnectionSettings, PolicyIr } from '../policy/kind.ts'
import type { ExtAuthSpec } from '../policy/ext-auth/spec.ts'

export interface OwnerRef {
  readonly kind: string
  readonly namespace: string
  readonly name: string
}

export interface Snapshot {
  /** Store revision the snapshot was translated from. */
  readonly revision: number
  /** One entry per HTTP/HTTPS port: each becomes one Bun.serve. */
  readonly http: readonly HttpPort[]
  /** One entry per TCP/UDP/TLS-passthrough port. */
  readonly l4: readonly L4Port[]
  /** Backend pools referenced by routes, keyed by BackendPool.key. */
  readonly pools: Readonly<Record<string, BackendPool>>
}

// ---------------------------------------------------------------- HTTP

export interface HttpPort {
  readonly port: number
  readonly protocol: 'HTTP' | 'HTTPS'
  /** Listeners sharing the port, most specific hostname first (exact, longer wildcard, none). */
  readonly listeners: readonly HttpListener[]
  /** ClientTrafficPolicy connection settings (PROXY protocol, limits, timeouts); absent = defaults. */
  readonly connection?: ConnectionSettings
}

export interface HttpListener {
  /** "gateway/<ns>/<name>/<listener>" */
  readonly id: string
  /** Listener hostname; undefined matches any host. May be a wildcard ("*.example.com"). */
  readonly hostname?: string
  /** TLS termination for HTTPS listeners. */
  readonly tls?: ListenerTls
  /**
   * Route hostnames (the intersection of listener and route hostnames) with their rules.
   * Ordered by hostname precedence: exact names first, then wildcards longest first, then "*".
   * A request tries each host that matches, in this order, and takes the first matching rule.
   */
  readonly virtualHosts: readonly VirtualHost[]
  /**
   * Policy features attached to the Gateway or this listener, already merged (listener beats
   * Gateway per feature; at most one entry per name). A rule's own entry of the same name wins.
   */
  readonly policies?: readonly PolicyIr[]
}

export interface ListenerTls {
  /** Certificates served on this listener; chosen by SNI. PEM strings. */
  readonly certificates: readonly { readonly certPem: string; readonly keyPem: string }[]
  /** Frontend client-certificate validation (Gateway spec.tls.frontend). */
  readonly clientValidation?: { readonly caPem: string; readonly mode: 'AllowValidOnly' | 'AllowInsecureFallback' }
}

export interface VirtualHost {
  /** Exact name, wildcard "*.x.y", or "*" for any. Lower-case. */
  readonly hostname: string
  /** Rules in Gateway API precedence order. */
  readonly rules: readonly HttpRule[]
}

export interface HttpRule {
  /** "httproute/<ns>/<name>/rule/<i>/match/<j>": stable, used in logs and metrics. */
  readonly id: string
  readonly owner: OwnerRef
  readonly match: HttpMatch
  /** Request-phase filters, applied in manifest order. */
  readonly filters: readonly HttpFilter[]
  /** What happens after the filters. */
  readonly action: HttpAction
  /** Gateway API timeouts; 0 means explicitly disabled (no default applies), absent means unset. */
  readonly timeouts?: { readonly requestMs?: number; readonly backendRequestMs?: number }
  readonly retry?: HttpRetry
  /** Portico extension: idle timeout for streaming responses and WebSockets (ms). */
  readonly streamIdleTimeoutMs?: number
  /** Portico extension: largest request body in bytes (annotation portico.dev/max-body-size); 0 = unlimited. */
  readonly maxBodyBytes?: number
  readonly sessionPersistence?: SessionPersistence
  /**
   * Policy features attached to the route or this rule, already merged (rule beats route per
   * feature; at most one entry per name). They override the listener's entries of the same name.
   */
  readonly policies?: readonly PolicyIr[]
}

export interface HttpMatch {
  readonly path: PathMatch
  readonly method?: string
  readonly headers: readonly StringMatch[]
  readonly query: readonly StringMatch[]
}

export interface PathMatch {
  readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression'
  readonly value: string
}

export interface StringMatch {
  /** Header names are lower-case; query parameter names are exact. */
  readonly name: string
  readonly type: 'Exact' | 'RegularExpression'
  readonly value: string
}

export interface HeaderModifier {
  readonly set: readonly (readonly [string, string])[]
  readonly add: readonly (readonly [string, string])[]
  readonly remove: readonly string[]
}

export type HttpFilter =
  | ({ readonly type: 'RequestHeaderModifier' } & HeaderModifier)
  | ({ readonly type: 'ResponseHeaderModifier' } & HeaderModifier)
  | { readonly type: 'URLRewrite'; readonly hostname?: string; readonly path?: PathModifier }
  | { readonly type: 'RequestMirror'; readonly backend: BackendTarget; readonly percent: number }
  /** Gateway API ExternalAuth (GEP-1494, HTTP): the extAuth runtime's spec (src/policy/ext-auth/spec.ts). */
  | ({ readonly type: 'ExternalAuth' } & ExtAuthSpec)
  | {
      readonly type: 'CORS'
      readonly allowOrigins: readonly string[]
      readonly allowMethods: readonly string[]
      readonly allowHeaders: readonly string[]
      readonly exposeHeaders: readonly string[]
      readonly allowCredentials: boolean
      readonly maxAgeSeconds?: number
    }

export interface PathModifier {
  readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch'
  readonly value: string
}

export type HttpAction = ForwardAction | RedirectAction | RespondAction

export interface ForwardAction {
  readonly kind: 'forward'
  /** Weighted choices. A choice with `invalid` set answers 500 for its share of traffic. */
  readonly backends: readonly WeightedBackend[]
}

export interface WeightedBackend {
  readonly weight: number
  /** Present when the backendRef resolved. */
  readonly target?: BackendTarget
  /** Why the backendRef did not resolve (such a choice answers 500). */
  readonly invalid?: string
  /** Per-backendRef filters (RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestMirror). */
  readonly filters: readonly HttpFilter[]
  /**
   * TLSRoute backends only: the Service port's BackendTLSPolicy. A route on a Terminate listener
   * re-encrypts to the backend with it (invalid: the connection is refused rather than sent in
   * plaintext); Passthrough ignores it.
   */
  readonly backendTls?: BackendTls | { readonly invalid: string }
  /** A Composite backendRef (gateway.portico.dev): members called together, answers merged (src/dataplane/composite). */
  readonly composite?: CompositeIr
}

export interface BackendTarget {
  /** Key into Snapshot.pools. */
  readonly pool: string
}

export interface RedirectAction {
  readonly kind: 'redirect'
  readonly statusCode: 301 | 302 | 303 | 307 | 308
  readonly scheme?: string
  readonly hostname?: string
  /** Explicit port. When absent, the data plane derives it per the spec (scheme default or listener port). */
  readonly port?: number
  readonly path?: PathModifier
}

export interface RespondAction {
  readonly kind: 'respond'
  readonly status: number
  readonly body?: string
}

export interface HttpRetry {
  /** Status codes that are retried; connection errors are always retryable (unless `triggers` says otherwise). */
  readonly codes: readonly number[]
  /** Number of retries after the first attempt. */
  readonly attempts: number
  /** Before retry n: backoffMs × n, at most maxBackoffMs. */
  readonly backoffMs: number
  readonly maxBackoffMs?: number
  /**
   * BackendTrafficPolicy `retryOn.triggers`; absent (HTTPRoute retry, GEP-1731): `codes` plus
   * every connection error. A connection that was refused is always tried on another endpoint,
   * whatever this says (the request never reached a backend).
   */
  readonly triggers?: readonly RetryTrigger[]
  /** BackendTrafficPolicy `perRetry.timeout`: each attempt's own deadline. */
  readonly perTryTimeoutMs?: number
}

/** Envoy's retry_on conditions that apply to HTTP/1.1 and h2c backends. */
export type RetryTrigger = '5xx' | 'gateway-error' | 'reset' | 'connect-failure' | 'retriable-4xx' | 'refused-stream' | 'retriable-status-codes'

export interface SessionPersistence {
  readonly type: 'Cookie' | 'Header'
  readonly name: string
  readonly absoluteTimeoutMs?: number
}

// ---------------------------------------------------------------- Composite (aggregation)

/** A Composite (gateway.portico.dev/v1alpha1) resolved: what src/dataplane/composite runs. */
export interface CompositeIr {
  /** "composite/<ns>/<name>": the metric label and sticky-session identity. */
  readonly id: string
  /** Overall deadline (ms) for every member together. */
  readonly timeoutMs: number
  /** Two members set the same top-level key: 502 naming it (Error), or the first / last member's value. */
  readonly onConflict: 'Error' | 'First' | 'Last'
  /** Status of an answer missing an optional member. */
  readonly partialStatus: 200 | 206
  /** Names for `{param}` in member paths, from the incoming path ("/profile/{id}"); absent: query parameters only. */
  readonly pathPattern?: string
  /** In declared order: the merge order. */
  readonly members: readonly CompositeMemberIr[]
}

export interface CompositeMemberIr {
  /** The member label in errors, metrics and spans: `name`, else the backendRef's name. */
  readonly name: string
  /** Key into Snapshot.pools; absent when the backendRef did not resolve (the member always fails). */
  readonly pool?: string
  readonly invalid?: string
  /** Path (and query) template: "/users/{id}", "/orders?user={id}". */
  readonly path: string
  /** Absent: the client's method. */
  readonly method?: string
  /** Own deadline inside the overall one (ms). */
  readonly timeoutMs?: number
  readonly required: boolean
  /** Dot path to unwrap before shaping ("data"). */
  readonly target?: string
  /** Fields kept / removed (dot paths). */
  readonly allow?: readonly string[]
  readonly deny?: readonly string[]
  /** Top-level renames, [from, to], in declared order. */
  readonly mapping?: readonly (readonly [string, string])[]
  /** Nest the member's JSON under this key. */
  readonly group?: string
  /** Send (part of) the client's JSON body: `allow` empty = all of it. Absent: no body. */
  readonly requestBody?: { readonly allow: readonly string[] }
}

// ---------------------------------------------------------------- L4

export interface L4Port {
  readonly port: number
  /** TLS = SNI routing; passthrough unless `terminate` is set. */
  readonly protocol: 'TCP' | 'UDP' | 'TLS'
  readonly routes: readonly L4Route[]
  /** ClientTrafficPolicy connection settings (PROXY protocol, limits, idle timeout); absent = defaults. */
  readonly connection?: ConnectionSettings
}

export interface L4Route {
  /** "tcproute/<ns>/<name>/rule/<i>" */
  readonly id: string
  readonly owner: OwnerRef
  /** SNI hostnames for TLS routes (exact or "*.wildcard"); empty means any. */
  readonly hostnames: readonly string[]
  /** TLS termination (TLSRoute on a Terminate listener). */
  readonly terminate?: ListenerTls
  readonly backends: readonly WeightedBackend[]
  /** Send a PROXY protocol header of this version to the backend first (BackendTrafficPolicy proxyProtocol). */
  readonly proxyProtocol?: 'V1' | 'V2'
  /**
   * BackendTrafficPolicy loadBalancer, healthCheck and circuitBreaker (UDP: loadBalancer only),
   * merged Gateway < listener < route < rule. The route's backends go through pool variants with
   * them (src/dataplane/upstream/variants.ts), as an HTTP rule's do.
   */
  readonly policies?: readonly PolicyIr[]
}

// ---------------------------------------------------------------- backends

export interface BackendPool {
  /** "<ns>/<service>:<port>" */
  readonly key: string
  /** Ready endpoints only. */
  readonly endpoints: readonly Endpoint[]
  /** How to speak to the endpoints. */
  readonly protocol: 'http' | 'h2c' | 'ws' | 'https' | 'tcp' | 'udp'
  readonly policy: LoadBalancerPolicy
  /** Re-encryption to the backend (BackendTLSPolicy). */
  readonly tls?: BackendTls
  /**
   * BackendTrafficPolicy `healthCheck`, `circuitBreaker` and the retry budget, resolved (every
   * default filled in). Absent: the data plane's built-in passive health and nothing else. A
   * route whose policy changes any of these (or `policy`) gets a pool of its own (a variant: key
   * "<ns>/<service>:<port>#<policy id>") so routes sharing the Service keep theirs.
   */
  readonly healthCheck?: HealthCheckPolicy
  readonly circuitBreaker?: CircuitBreakerPolicy
  readonly retryBudget?: RetryBudget
}

export interface Endpoint {
  readonly address: string
  readonly port: number
  readonly zone?: string
}

export type LoadBalancerPolicy =
  | { readonly type: 'RoundRobin' }
  | { readonly type: 'Random' }
  | { readonly type: 'LeastRequest' }
  | {
      readonly type: 'ConsistentHash'
      readonly source: 'ClientIP' | 'Header' | 'Cookie'
      /** Header or cookie name. */
      readonly name?: string
      /** Cookie only: when the client sends none, one is generated and set with this Max-Age (seconds). */
      readonly cookieTtlSeconds?: number
      /** Cookie only: extra Set-Cookie attributes ("Path", "/"). */
      readonly cookieAttributes?: readonly (readonly [string, string])[]
      /** Maglev lookup table size, a prime (default 65537). */
      readonly tableSize?: number
    }

export interface HealthCheckPolicy {
  readonly active?: ActiveHealthCheck
  readonly passive?: PassiveHealthCheck
}

/** Probes sent by the gateway itself, once per endpoint and process (the main thread). */
export interface ActiveHealthCheck {
  readonly type: 'HTTP' | 'TCP'
  readonly intervalMs: number
  readonly timeoutMs: number
  /** Failed probes in a row before a healthy endpoint is marked unhealthy. */
  readonly unhealthyThreshold: number
  /** Passed probes in a row before an unhealthy endpoint is marked healthy again. */
  readonly healthyThreshold: number
  readonly http?: {
    readonly path: string
    readonly method: string
    /** Host header; default the endpoint's address. */
    readonly hostname?: string
    /** Statuses that pass; empty = 200-399. */
    readonly expectedStatuses: readonly number[]
  }
}

/** Outlier detection on real traffic (Envoy Gateway's passive health check). */
export interface PassiveHealthCheck {
  /** 5xx responses (and local-origin failures, as Envoy counts them) in a row before ejection; 0 = off. */
  readonly consecutive5xxErrors: number
  /** 502/503/504 responses and local-origin failures in a row; 0 = off. */
  readonly consecutiveGatewayErrors: number
  /** Connect failures, resets and timeouts in a row; 0 = off. */
  readonly consecutiveLocalOriginFailures: number
  /** Ejection counts decay by one per interval without a new ejection. */
  readonly intervalMs: number
  /** Ejected for this × the number of recent ejections. */
  readonly baseEjectionTimeMs: number
  /** At most this share of the pool is ejected at once (at least one endpoint, never the whole pool). */
  readonly maxEjectionPercent: number
}

/** Limits per backend pool (per process: each worker counts its own). */
export interface CircuitBreakerPolicy {
  /** Requests holding an upstream connection (HTTP/1.1: one each) / open L4 connections. */
  readonly maxConnections: number
  /** Requests waiting for a connection once maxConnections is reached. */
  readonly maxPendingRequests: number
  /** Requests in flight. */
  readonly maxParallelRequests: number
  /** Retries in flight. */
  readonly maxParallelRetries: number
}

/** Gateway API XBackendTrafficPolicy retryConstraint: retries may not exceed this share of requests. */
export interface RetryBudget {
  /** Retries allowed as a percentage of the requests started within `intervalMs`. */
  readonly percent: number
  readonly intervalMs: number
  /** Always allowed regardless of the percentage: this many retries per `minRetryIntervalMs`. */
  readonly minRetryCount: number
  readonly minRetryIntervalMs: number
}

export interface BackendTls {
  /** SNI and the name the certificate must carry. */
  readonly hostname: string
  /** CA bundle; absent means the system store. */
  readonly caPem?: string
  readonly subjectAltNames: readonly string[]
}
