/**
 * BackendTrafficPolicy `loadBalancer`, `healthCheck`, `circuitBreaker` and `retry` (Envoy
 * Gateway's api/v1alpha1 loadbalancer_types.go, healthcheck_types.go, circuitbreaker_types.go,
 * retry_types.go field names and defaults), plus `retry.retryConstraint` (a Portico extension
 * shaped as the Gateway API XBackendTrafficPolicy's): schema fields and the features they become.
 * Every default is filled in here, so the data plane reads resolved settings (spec.ts).
 */
import type { ActiveHealthCheck, CircuitBreakerPolicy, HealthCheckPolicy, HttpRetry, LoadBalancerPolicy, PassiveHealthCheck, RetryTrigger } from '../../ir/types.ts'
import { parseDuration } from '../../translate/duration.ts'
import { array, boolean, duration, integer, object, string, unsupported, type Schema } from '../schema.ts'
import type { Feature } from '../translators.ts'
import type { RetrySpec } from './spec.ts'

const HTTP_TRIGGERS = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes'] as const
const GRPC_TRIGGERS = ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'] as const
const LIMIT = (description: string) => integer({ minimum: 0, maximum: 4294967295, description })

export const BACKEND_FIELDS: Record<string, Schema> = {
  loadBalancer: object(
    {
      type: string({ enum: ['ConsistentHash', 'LeastRequest', 'Random', 'RoundRobin'], description: 'How an endpoint is chosen per request.' }),
      consistentHash: object(
        {
          type: string({ enum: ['SourceIP', 'Header', 'Cookie'], description: 'What is hashed.' }),
          header: object({ name: string({ minLength: 1, description: 'Header whose value is hashed.' }) }, { required: ['name'] }),
          cookie: object(
            {
              name: string({ minLength: 1, description: 'Cookie whose value is hashed; generated and set when absent and ttl is given.' }),
              ttl: duration('Max-Age of the generated cookie.'),
              attributes: unsupported(),
            },
            { required: ['name'] },
          ),
          tableSize: integer({ minimum: 2, maximum: 5000011, description: 'Maglev table size, a prime (default 65537).' }),
        },
        { required: ['type'] },
      ),
      slowStart: unsupported(),
      zoneAware: unsupported(),
      endpointOverride: unsupported(),
    },
    { required: ['type'], description: 'Load balancing across the endpoints of the rule backends.' },
  ),
  healthCheck: object(
    {
      active: object(
        {
          type: string({ enum: ['HTTP', 'TCP', 'GRPC'] }),
          timeout: duration('Wait this long for a probe answer (default 1s).'),
          interval: duration('Between probes (default 3s).'),
          unhealthyThreshold: integer({ minimum: 1, description: 'Failed probes in a row before unhealthy (default 3).' }),
          healthyThreshold: integer({ minimum: 1, description: 'Passed probes in a row before healthy again (default 1).' }),
          http: object(
            {
              path: string({ minLength: 1, maxLength: 1024 }),
              method: string({ minLength: 1, description: 'Default GET.' }),
              expectedStatuses: array(integer({ minimum: 100, maximum: 599 }), { description: 'Default [200].' }),
              expectedResponse: unsupported(),
            },
            { required: ['path'] },
          ),
          tcp: object({ send: unsupported(), receive: unsupported() }),
          grpc: unsupported(),
        },
        { required: ['type'], description: 'Probes from the gateway, once per endpoint and process.' },
      ),
      passive: object(
        {
          splitExternalLocalOriginErrors: boolean({ description: 'Accepted; Portico always counts local-origin failures on their own and as 5xx/gateway errors.' }),
          interval: duration('Ejection counts decay by one per interval (default 3s).'),
          consecutiveLocalOriginFailures: integer({ minimum: 0, description: 'Connect failures and resets in a row (default 5).' }),
          consecutiveGatewayErrors: integer({ minimum: 0, description: '502/503/504 and local failures in a row (default 0: off).' }),
          consecutive5XxErrors: integer({ minimum: 0, description: '5xx and local failures in a row (default 5).' }),
          baseEjectionTime: duration('Ejected for this × recent ejections (default 30s).'),
          maxEjectionPercent: integer({ minimum: 0, maximum: 100, description: 'At most this share of a pool ejected (default 10; at least one endpoint, never all).' }),
        },
        { description: 'Outlier detection on live traffic.' },
      ),
      panicThreshold: unsupported(),
    },
    { description: 'Endpoint health: active probes and passive outlier detection.' },
  ),
  circuitBreaker: object(
    {
      maxConnections: LIMIT('Requests holding an upstream connection (default 1024).'),
      maxPendingRequests: LIMIT('Requests queued beyond maxConnections (default 1024).'),
      maxParallelRequests: LIMIT('Requests in flight (default 1024).'),
      maxParallelRetries: LIMIT('Retries in flight (default 1024).'),
      maxRequestsPerConnection: unsupported(),
      perEndpoint: unsupported(),
    },
    { description: 'Per backend pool and worker; over a limit the answer is 503 with x-portico-overload.' },
  ),
  retry: object(
    {
      numRetries: integer({ minimum: 0, description: 'Retries after the first attempt (default 2).' }),
      retryOn: object({
        triggers: array(string({ enum: [...HTTP_TRIGGERS, ...GRPC_TRIGGERS] })),
        httpStatusCodes: array(integer({ minimum: 100, maximum: 599 })),
      }),
      perRetry: object({
        timeout: duration("Each attempt's own deadline."),
        backOff: object({ baseInterval: duration('Before retry n: n × this (default 25ms).'), maxInterval: duration('At most this (default 10 × baseInterval).') }),
      }),
      retryConstraint: object(
        {
          budget: object({
            percent: integer({ minimum: 0, maximum: 100, description: 'Retries may be at most this percentage of the requests in the interval (default 20).' }),
            interval: duration('The window (default 10s).'),
          }),
          minRetryRate: object({ count: integer({ minimum: 0, description: 'Always allowed per interval (default 10).' }), interval: duration('Default 1s.') }),
        },
        { description: 'Portico extension (as Gateway API XBackendTrafficPolicy retryConstraint): a retry budget per backend pool.' },
      ),
    },
    { description: "Retries (an HTTPRoute rule's own retry field wins over this)." },
  ),
}

type Json = Record<string, any>

/** The features of these fields, or why the spec cannot be used (the policy is Invalid). */
export function backendFeatures(spec: Json): Feature[] | string {
  const out: Feature[] = []
  const problems: string[] = []
  if (spec.loadBalancer) {
    const lb = loadBalancer(spec.loadBalancer, problems)
    if (lb) out.push({ scope: 'request', name: 'loadBalancer', spec: lb })
  }
  if (spec.healthCheck) {
    const hc = healthCheck(spec.healthCheck, problems)
    if (hc) out.push({ scope: 'request', name: 'healthCheck', spec: hc })
  }
  if (spec.circuitBreaker) {
    const cb = spec.circuitBreaker
    const limits: CircuitBreakerPolicy = {
      maxConnections: cb.maxConnections ?? 1024,
      maxPendingRequests: cb.maxPendingRequests ?? 1024,
      maxParallelRequests: cb.maxParallelRequests ?? 1024,
      maxParallelRetries: cb.maxParallelRetries ?? 1024,
    }
    out.push({ scope: 'request', name: 'circuitBreaker', spec: limits })
  }
  if (spec.retry) out.push({ scope: 'request', name: 'retry', spec: retry(spec.retry, problems) })
  return problems.length ? problems.join('; ') : out
}

const ms = (v: unknown, fallback: number): number => (v === undefined ? fallback : (parseDuration(v) ?? fallback))

function loadBalancer(lb: Json, problems: string[]): LoadBalancerPolicy | undefined {
  if (lb.type !== 'ConsistentHash') {
    if (lb.consistentHash) problems.push('If LoadBalancer type is consistentHash, consistentHash field needs to be set (and only then).')
    return { type: lb.type }
  }
  const ch = lb.consistentHash
  if (!ch) return void problems.push('If LoadBalancer type is consistentHash, consistentHash field needs to be set.')
  const tableSize = ch.tableSize as number | undefined
  if (tableSize !== undefined && !isPrime(tableSize)) problems.push(`loadBalancer.consistentHash.tableSize ${tableSize} must be a prime number`)
  const table = tableSize !== undefined ? { tableSize } : {}
  if ((ch.type === 'Header') !== (ch.header !== undefined)) problems.push('If consistent hash type is header, the header field must be set.')
  if ((ch.type === 'Cookie') !== (ch.cookie !== undefined)) problems.push('If consistent hash type is cookie, the cookie field must be set.')
  if (ch.type === 'SourceIP') return { type: 'ConsistentHash', source: 'ClientIP', ...table }
  if (ch.type === 'Header') return ch.header ? { type: 'ConsistentHash', source: 'Header', name: ch.header.name, ...table } : undefined
  if (!ch.cookie) return undefined
  const ttl = ch.cookie.ttl !== undefined ? parseDuration(ch.cookie.ttl) : undefined
  return { type: 'ConsistentHash', source: 'Cookie', name: ch.cookie.name, ...(ttl !== undefined ? { cookieTtlSeconds: Math.ceil(ttl / 1000) } : {}), ...table }
}

function healthCheck(hc: Json, problems: string[]): HealthCheckPolicy | undefined {
  const out: { active?: ActiveHealthCheck; passive?: PassiveHealthCheck } = {}
  const a = hc.active
  if (a) {
    if (a.type === 'GRPC') problems.push('healthCheck.active type GRPC is not supported yet')
    else if ((a.type === 'HTTP') !== (a.http !== undefined)) problems.push('If Health Checker type is HTTP, http field needs to be set.')
    else
      out.active = {
        type: a.type,
        intervalMs: ms(a.interval, 3000),
        timeoutMs: ms(a.timeout, 1000),
        unhealthyThreshold: a.unhealthyThreshold ?? 3,
        healthyThreshold: a.healthyThreshold ?? 1,
        ...(a.type === 'HTTP' ? { http: { path: a.http.path, method: String(a.http.method ?? 'GET').toUpperCase(), expectedStatuses: a.http.expectedStatuses ?? [200] } } : {}),
      }
  }
  const p = hc.passive
  if (p)
    out.passive = {
      consecutive5xxErrors: p.consecutive5XxErrors ?? 5,
      consecutiveGatewayErrors: p.consecutiveGatewayErrors ?? 0,
      consecutiveLocalOriginFailures: p.consecutiveLocalOriginFailures ?? 5,
      intervalMs: ms(p.interval, 3000),
      baseEjectionTimeMs: ms(p.baseEjectionTime, 30_000),
      maxEjectionPercent: p.maxEjectionPercent ?? 10,
    }
  return out.active || out.passive ? out : undefined
}

/** Envoy Gateway's default retryOn: connect-failure, refused-stream, retriable-status-codes [503] (and gRPC ones HTTP/1.1 never sees). */
const DEFAULT_TRIGGERS: readonly RetryTrigger[] = ['connect-failure', 'refused-stream', 'retriable-status-codes']

function retry(r: Json, problems: string[]): RetrySpec {
  const triggers: string[] | undefined = r.retryOn?.triggers
  const grpc = (triggers ?? []).filter((t) => (GRPC_TRIGGERS as readonly string[]).includes(t))
  if (grpc.length) problems.push(`retry.retryOn.triggers ${grpc.join(', ')} (gRPC) are not supported yet`)
  const base = ms(r.perRetry?.backOff?.baseInterval, 25)
  const perTry = r.perRetry?.timeout !== undefined ? parseDuration(r.perRetry.timeout) : undefined
  const out: HttpRetry = {
    codes: r.retryOn?.httpStatusCodes ?? (triggers ? [] : [503]),
    attempts: r.numRetries ?? 2,
    backoffMs: base,
    maxBackoffMs: ms(r.perRetry?.backOff?.maxInterval, base * 10),
    triggers: (triggers as RetryTrigger[] | undefined) ?? DEFAULT_TRIGGERS,
    ...(perTry !== undefined ? { perTryTimeoutMs: perTry } : {}),
  }
  const c = r.retryConstraint
  if (!c) return { retry: out }
  return {
    retry: out,
    budget: {
      percent: c.budget?.percent ?? 20,
      intervalMs: ms(c.budget?.interval, 10_000),
      minRetryCount: c.minRetryRate?.count ?? 10,
      minRetryIntervalMs: ms(c.minRetryRate?.interval, 1000),
    },
  }
}

function isPrime(n: number): boolean {
  if (n < 2 || !Number.isInteger(n)) return false
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false
  return true
}
