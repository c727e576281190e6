/**
 * Forward one request to a pool: pick an endpoint, stream the body up and the response down,
 * retry and time out per the rule, map failures to 502/503/504.
 *
 * Plain HTTP pools go through the own HTTP/1.1 client (http1-forward.ts): fetch() costs about
 * 40 µs of CPU per request and adds headers of its own. Backend TLS pools still use fetch(),
 * always with decompress:false (otherwise it inflates the body but keeps Content-Encoding) and
 * redirect:'manual' (a proxy must relay 3xx, not follow them); h2c pools use h2c.ts.
 */
import { requestMetrics } from '../../telemetry/request-metrics.ts'
import { telemetry } from '../../telemetry/observe.ts'
import type { RoutePlan } from '../snapshot.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import type { EndpointRegistry } from '../upstream/registry.ts'
import type { Logger } from '../log.ts'
import type { RequestState } from './context.ts'
import type { ResponseHook } from './chain.ts'
import { reportOutcome } from './chain.ts'
import { setUpstreamFields, stripHopByHop, suppressFetchDefaults } from './headers.ts'
import { fireMirrors } from './filters/mirror.ts'
import { h2cFetch, type H2cInit } from '../upstream/h2c.ts'
import { grpcWebFetch, isGrpcWeb } from '../http2/grpc-web.ts'
import type { StreamGuard } from './streaming.ts'
import { discardHttp1Body, http1Request, relayHttp1, sendHttp1, upstreamHeaderLines, usesHttp1Client } from './http1-forward.ts'
import { UpstreamError, type Http1Response } from '../upstream/http1/index.ts'
import { cookieValue } from '../upstream/policies/consistent-hash.ts'

/** Bodies up to this size (with a known Content-Length) are buffered when a retry or mirror needs to replay them. */
export const MAX_REPLAY_BODY_BYTES = 64 * 1024

export interface ProxyDeps {
  readonly registry: EndpointRegistry
  readonly logger: Logger
}

/**
 * Why an attempt failed. The final one decides the status: refused → 502; reset/closed before
 * response headers → 503 (what Envoy answers, and what the Gateway API retry conformance test
 * accepts: 500 or 503); timeout → 504.
 */
type Failure = 'refused' | 'reset' | 'timeout' | 'client-gone'

const FAILURE_STATUS: Record<Exclude<Failure, 'client-gone'>, [number, string]> = {
  refused: [502, 'upstream connect error'],
  reset: [503, 'upstream reset before response headers'],
  timeout: [504, 'upstream request timeout'],
}

const TIMEOUT = Symbol('timeout')

export async function forward(
  state: RequestState,
  route: RoutePlan,
  pool: RuntimePool,
  responseFilters: readonly (readonly ResponseHook[])[],
  deps: ProxyDeps,
  /** Replaces Bun's idle timer while bodies stream (streaming.ts). */
  streams?: StreamGuard,
): Promise<Response> {
  const req = state.req
  // The HTTP/1.1 path serialises header lines straight from the client's headers (read before
  // anything below modifies the upstream copy); fetch and mirrors take a prepared Headers object.
  const lines = usesHttp1Client(pool) ? upstreamHeaderLines(state) : undefined
  let headers: Headers | undefined
  if (lines === undefined || state.mirrors) {
    headers = state.upstreamHeaders
    prepareUpstreamHeaders(state, headers)
  }

  const wantReplay = route.retry !== undefined || state.mirrors !== undefined
  const body = req.body === null ? NO_BODY : await requestBody(req, wantReplay, streams)
  if (state.mirrors) {
    if (body.replayable) fireMirrors(state, headers!, body.buffer, deps.logger)
    else deps.logger.debug('streamed body not mirrored', { route: route.id })
  }

  const deadline = route.requestTimeoutMs === undefined ? Infinity : Date.now() + route.requestTimeoutMs
  const circuit = pool.circuit
  if (!circuit) return attempts(state, route, pool, lines, headers, body, responseFilters, deadline, deps, streams)
  const refusedBy = await circuit.acquire(pool.limits!, state.req.signal)
  if (refusedBy !== undefined) return overloadResponse(refusedBy)
  try {
    return await attempts(state, route, pool, lines, headers, body, responseFilters, deadline, deps, streams)
  } finally {
    circuit.release(pool.limits)
  }
}

/** The attempts of one request on one pool: retries per the rule, refused connects on other endpoints. */
async function attempts(
  state: RequestState,
  route: RoutePlan,
  pool: RuntimePool,
  lines: string | undefined,
  headers: Headers | undefined,
  body: RequestBody,
  responseFilters: readonly (readonly ResponseHook[])[],
  deadline: number,
  deps: ProxyDeps,
  streams: StreamGuard | undefined,
): Promise<Response> {
  const retry = route.retry
  const maxAttempts = 1 + (retry && body.replayable ? retry.attempts : 0)
  const budget = pool.budget
  if (budget) budget.request(pool.retryBudget!, Date.now())
  // ConsistentHash Cookie with a ttl: a client without the cookie gets one, and is hashed by it.
  let hashKey: string | undefined
  if (pool.cookie && cookieValue(state.headers.get('cookie'), pool.cookie.name) === undefined) {
    hashKey = crypto.randomUUID()
    const setCookie = `${pool.cookie.name}=${hashKey}${pool.cookie.attributes}`
    responseFilters = [...responseFilters, [(_req, h) => h.append('set-cookie', setCookie)]]
  }
  let member: PoolMember | undefined
  let failure: Exclude<Failure, 'client-gone'> = 'refused'
  // Attempts the backend may have seen so far, and whether the next one may use a pooled connection.
  let used = 0
  let pooled = true
  /** Endpoints that refused a connection: the request goes to each other endpoint at most once. */
  let tried: Set<PoolMember> | undefined
  let attempt = 0
  let retrying = false

  try {
  while (true) {
    member = pool.pick({ clientIp: state.clientIp, headers: state.headers, now: Date.now(), avoid: member, tried, hashKey })
    if (!member) {
      if (tried) break
      return errorResponse(503, 'no healthy upstream')
    }
    const payload = body.replayable ? body.buffer : body.stream
    const result = lines !== undefined
      ? await attemptHttp1(state, pool, member, lines, payload, pooled, route, deadline, deps)
      : await attemptOnce(state, pool, member, headers!, payload, pooled, route, deadline, deps)
    if (retrying) {
      pool.circuit?.endRetry()
      retrying = false
    }

    if (route.chain.outcomes.length > 0) reportAttempt(route, member.state.key, result)
    if (typeof result === 'object' && 'status' in result) {
      // The HTTP/1.1 client replays once by itself after a stale pooled connection: count both.
      used += result instanceof Response ? 1 : result.attempts
      const retryable = retry !== undefined && retry.retryStatus(result.status)
      if (!retryable || used >= maxAttempts || Date.now() + retry.backoffMs >= deadline || !mayRetry(pool)) {
        return result instanceof Response
          ? relayResponse(state, result, responseFilters, streams)
          : relayHttp1(state, result, responseFilters, streams && ((b, length) => streams.watchDownload(b, length)))
      }
      if (result instanceof Response) await result.body?.cancel().catch(() => {})
      else discardHttp1Body(result)
    } else {
      const attemptFailure = typeof result === 'string' ? result : result.failure
      if (attemptFailure === 'client-gone') return errorResponse(499, 'client closed request')
      failure = attemptFailure
      // Refused: the request never reached a backend. Another endpoint at once, whatever the
      // method and the retry policy, each endpoint at most once (the HTTP/1.1 client has not read
      // a streamed body yet; fetch may have, so it needs a replayable one).
      if (failure === 'refused' && (lines !== undefined || body.replayable)) {
        ;(tried ??= new Set()).add(member)
        if (tried.size < pool.members.length && Date.now() < deadline) {
          deps.logger.debug('connection refused: trying another endpoint', { route: route.id, endpoint: member.state.key })
          continue
        }
      }
      // Measured: when a reused keep-alive connection is reset, fetch silently re-sends a
      // bodiless request once on a new connection. Count that as an attempt so the backend
      // never sees more than 1 + retry.attempts requests, and make later attempts use fresh
      // connections (keepalive:false), where fetch does not retry. The HTTP/1.1 client reports
      // how often it wrote the request.
      if (typeof result === 'object') used += result.sent
      else used += failure === 'reset' && pooled && payload === null ? 2 : 1
      if (maxAttempts > 1) pooled = false
      // A per-attempt timeout or a connection error is worth another endpoint if time remains.
      if (retry === undefined || !retry.retryFailure(failure) || used >= maxAttempts || Date.now() + retry.backoffMs >= deadline || !mayRetry(pool)) break
    }
    attempt++
    if (telemetry.metrics) requestMetrics.retry(route.id, pool.key)
    retrying = pool.circuit !== undefined
    deps.logger.debug('retrying upstream request', { route: route.id, attempt, endpoint: member.state.key })
    const backoff = Math.min(retry!.backoffMs * attempt, retry!.maxBackoffMs)
    if (backoff > 0) await Bun.sleep(backoff)
  }
  } finally {
    // A retry that never got its attempt (no member left) gives its slot back.
    if (retrying) pool.circuit?.endRetry()
  }
  const [status, message] = FAILURE_STATUS[failure]
  return errorResponse(status, message)
}

/** A configured retry may start: the pool's retry budget and maxParallelRetries allow it (both taken here). */
function mayRetry(pool: RuntimePool): boolean {
  if (pool.budget && !pool.budget.tryRetry(pool.retryBudget!, Date.now())) return false
  if (pool.circuit && pool.circuit.tryRetry(pool.limits!) !== undefined) return false
  return true
}

/** 503 from a circuit limit, saying which (the header is what clients and dashboards key on). */
export function overloadResponse(limit: string): Response {
  return new Response(`upstream overloaded: ${limit}\n`, {
    status: 503,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'x-portico-overload': `circuit-open ${limit}` },
  })
}

/** Policies with onUpstreamOutcome (circuit breakers, outlier detection) hear of every attempt. */
function reportAttempt(route: RoutePlan, endpoint: string, result: Response | Http1Response | Failure | Http1Failure): void {
  if (typeof result === 'object' && 'status' in result) return reportOutcome(route.chain, endpoint, { kind: 'response', status: result.status })
  const failure = typeof result === 'string' ? result : result.failure
  if (failure !== 'client-gone') reportOutcome(route.chain, endpoint, { kind: failure })
}

function prepareUpstreamHeaders(state: RequestState, headers: Headers): void {
  setUpstreamFields(headers, state)
  suppressFetchDefaults(headers)
}

type RequestBody =
  | { readonly replayable: true; readonly buffer: ArrayBuffer | null; readonly stream?: undefined }
  | { readonly replayable: false; readonly stream: ReadableStream<Uint8Array>; readonly buffer?: undefined }

/** Most requests (GET) have no body: no promise, no allocation. */
const NO_BODY: RequestBody = { replayable: true, buffer: null }

/**
 * Bodiless requests are trivially replayable. Small bodies of known length are buffered when a
 * retry or a mirror needs them again; everything else streams (duplex 'half') and is never
 * buffered, so a big upload is not retried.
 */
async function requestBody(req: Request, wantReplay: boolean, streams: StreamGuard | undefined): Promise<RequestBody> {
  const stream = req.body
  if (!stream) return { replayable: true, buffer: null }
  const length = req.headers.get('content-length')
  if (length === '0') return { replayable: true, buffer: null }
  if (wantReplay && length !== null && Number(length) <= MAX_REPLAY_BODY_BYTES) {
    return { replayable: true, buffer: await req.arrayBuffer() }
  }
  return { replayable: false, stream: streams ? streams.watchUpload(stream, length) : stream }
}

async function attemptOnce(
  state: RequestState,
  pool: RuntimePool,
  member: PoolMember,
  headers: Headers,
  body: ArrayBuffer | ReadableStream<Uint8Array> | null,
  pooled: boolean,
  route: RoutePlan,
  deadline: number,
  deps: ProxyDeps,
): Promise<Response | Failure> {
  const controller = new AbortController()
  const budget = Math.min(route.backendTimeoutMs ?? Infinity, route.retry?.perTryTimeoutMs ?? Infinity, deadline - Date.now())
  if (budget <= 0) return 'timeout'
  // Cleared as soon as headers arrive: timeouts bound the wait for a response, not the
  // streaming of its body (an SSE stream must not be cut by a request timeout).
  const timer = budget === Infinity ? undefined : setTimeout(() => controller.abort(TIMEOUT), budget)
  const signal = AbortSignal.any([state.req.signal, controller.signal])
  const endpoint = member.state
  endpoint.inFlight++
  try {
    const init: RequestInit & { decompress: boolean } = {
      method: state.method,
      headers,
      body,
      signal,
      redirect: 'manual',
      decompress: false,
      keepalive: pooled,
    }
    // Backend TLS: SNI and verification name from the policy; the CA bundle or the system store.
    if (pool.tls) (init as { tls?: unknown }).tls = pool.tls
    if (body instanceof ReadableStream) (init as { duplex?: string }).duplex = 'half'
    // fetch cannot speak h2c: those pools go through a node:http2 session pool with fetch's shape.
    const send = isGrpcWeb(state.headers.get('content-type')) && (pool.ir.protocol === 'h2c' || pool.ir.protocol === 'https') ? grpcWebFetch : pool.ir.protocol === 'h2c' ? h2cFetch : fetch
    const res = await send(member.origin + state.path + state.query, init as RequestInit & H2cInit)
    pool.outcome(endpoint, res.status)
    return res
  } catch (err) {
    if (controller.signal.aborted && controller.signal.reason === TIMEOUT) return 'timeout'
    if (state.req.signal.aborted) return 'client-gone'
    const code = errorCode(err)
    deps.logger.warn('upstream request failed', { endpoint: endpoint.key, route: route.id, error: code })
    // A backend certificate that fails verification (CA, hostname, BackendTLSPolicy SANs) is a
    // connect failure like a refusal (502), not a reset of an accepted request.
    const refused = code === 'ECONNREFUSED' || code === 'ConnectionRefused' || TLS_VERIFY_FAILURE.test(code)
    pool.outcome(endpoint, refused ? 'refused' : 'local')
    return refused ? 'refused' : 'reset'
  } finally {
    if (timer) clearTimeout(timer)
    // Counts requests waiting for response headers; streaming bodies are not tracked.
    endpoint.inFlight--
  }
}

/** A failed HTTP/1.1 attempt and how many times the request was written (stale-connection replay). */
interface Http1Failure {
  readonly failure: Failure
  readonly sent: number
}

const HTTP1_FAILURE: Record<UpstreamError['kind'], Failure> = {
  refused: 'refused',
  reset: 'reset',
  timeout: 'timeout',
  aborted: 'client-gone',
}

/** One attempt on the own HTTP/1.1 client: same budget, health and in-flight accounting as attemptOnce. */
async function attemptHttp1(
  state: RequestState,
  pool: RuntimePool,
  member: PoolMember,
  lines: string,
  body: ArrayBuffer | ReadableStream<Uint8Array> | null,
  pooled: boolean,
  route: RoutePlan,
  deadline: number,
  deps: ProxyDeps,
): Promise<Http1Response | Http1Failure> {
  // Timeouts bound the wait for the response head, not the streaming of its body (SSE).
  const budget = Math.min(route.backendTimeoutMs ?? Infinity, route.retry?.perTryTimeoutMs ?? Infinity, deadline - Date.now())
  if (budget <= 0) return { failure: 'timeout', sent: 0 }
  const endpoint = member.state
  endpoint.inFlight++
  const outcome = await sendHttp1(member, http1Request(state, lines, body), budget, !pooled, state.req)
  // Counts requests waiting for response headers; streaming bodies are not tracked.
  endpoint.inFlight--
  if (!(outcome instanceof UpstreamError)) {
    pool.outcome(endpoint, outcome.status)
    return outcome
  }
  const failure = HTTP1_FAILURE[outcome.kind]
  if (failure === 'refused' || failure === 'reset') {
    pool.outcome(endpoint, failure === 'refused' ? 'refused' : 'local')
    deps.logger.warn('upstream request failed', { endpoint: endpoint.key, route: route.id, error: outcome.code ?? outcome.message })
  }
  return { failure, sent: outcome.attempts }
}

function relayResponse(
  state: RequestState,
  upstream: Response,
  responseFilters: readonly (readonly ResponseHook[])[],
  streams: StreamGuard | undefined,
): Response {
  const headers = new Headers(upstream.headers)
  stripHopByHop(headers)
  for (const filters of responseFilters) for (const filter of filters) filter(state, headers, upstream.status)
  // Bun.serve labels a relayed fetch body "application/octet-stream" when the upstream sent no
  // Content-Type (measured; deleting the header does not help). A proxy must not invent one,
  // so such bodies go through an identity stream, which Bun does not label. Rare path.
  let body = upstream.body && !headers.has('content-type') ? upstream.body.pipeThrough(new TransformStream()) : upstream.body
  if (body && streams) body = streams.watchDownload(body, headers.get('content-length'))
  return new Response(body, { status: upstream.status, statusText: upstream.statusText, headers })
}

export function errorResponse(status: number, message: string): Response {
  const res = new Response(`${message}\n`, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } })
  localResponses.add(res)
  return res
}

/** Answers the gateway made itself (errorResponse), for the local-reply metrics (handler.ts). */
export const localResponses = new WeakSet<Response>()

/** OpenSSL/Node verification codes: ERR_TLS_CERT_ALTNAME_INVALID, DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED... */
const TLS_VERIFY_FAILURE = /^ERR_TLS_|CERT|^UNABLE_TO_/

function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err) return String((err as { code: unknown }).code)
  return String(err)
}
