/**
 * The request pipeline for one HTTP port: match → the rule's chain (policies and filters by
 * phase, http/chain.ts; async verdicts awaited) → action (respond / redirect / forward →
 * the backend's filters → proxy). Reads the plan once.
 */
import type { BackendChoice, PortPlan, RoutePlan } from '../snapshot.ts'
import { chooseBackend, chooseIndex, type ForwardPlan } from '../snapshot.ts'
import { assignHook, pinnedIndex } from './sticky.ts'
import { normalizeHost } from './match.ts'
import { RequestState } from './context.ts'
import { runRequestHooks, type Chain, type ResponseHook } from './chain.ts'
import { replyResponse, type ResponseBody, type Verdict } from '../../policy/runtime.ts'
import { errorResponse, forward, localResponses, type ProxyDeps } from './proxy.ts'
import { telemetry } from '../../telemetry/observe.ts'
import { observePipeline, type PipelineObs } from '../../telemetry/pipeline-obs.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import { isMisdirected } from './tls/misdirected.ts'
import { StreamGuard } from './streaming.ts'
import type { HttpLimits } from './limits.ts'
import { BodyGuard } from './request-guard.ts'
import { forwardWithLimits } from './guarded-forward.ts'
import type { WebSocketUpgrader } from './websocket.ts'
import { serveComposite } from '../composite/serve.ts'
import { editResponseHeaders } from '../../policy/client-traffic/response-headers.ts'

export interface Connection {
  readonly clientIp: string
  /** Gateway listener port (for redirects). */
  readonly listenerPort: number
  /** HTTPS: the SNI the client sent on this connection (421 when the Host picks another listener). */
  readonly serverName?: string | undefined
  /** Override the client connection's idle timeout for this request (Bun's server.timeout). */
  setIdleTimeout(req: Request, seconds: number): void
  /** The server-wide idle timeout (seconds), restored once a stream ends (streaming.ts). */
  readonly idleTimeoutSeconds: number
  /** Set for WebSocket upgrade requests: proxies the handshake and the session (websocket.ts). */
  readonly upgradeWebSocket?: WebSocketUpgrader | undefined
  /** Body, timeout and overload limits (limits.ts); absent = none (unit tests of the pipeline). */
  readonly limits?: HttpLimits
}

/**
 * undefined when the request was upgraded to a WebSocket (Bun's contract for fetch handlers).
 * `hostHeader` is the client's Host when the caller already read it (server.ts). Never rejects.
 */
export function handleRequest(req: Request, port: PortPlan, conn: Connection, deps: ProxyDeps, hostHeader: string | null = req.headers.get('host')): Promise<Response | undefined> {
  const edits = port.ir.connection?.lateResponseHeaders
  if (edits === undefined) return observedRequest(req, port, conn, deps, hostHeader)
  // ClientTrafficPolicy lateResponseHeaders: every answer of the port, local or relayed, last.
  return observedRequest(req, port, conn, deps, hostHeader).then((res) => {
    if (res) editResponseHeaders(res.headers, edits)
    return res
  })
}

async function observedRequest(req: Request, port: PortPlan, conn: Connection, deps: ProxyDeps, hostHeader: string | null): Promise<Response | undefined> {
  if (!telemetry.metrics && telemetry.log === undefined && telemetry.tracer === undefined) return serveRequest(req, port, conn, deps, hostHeader, undefined)
  // Request metrics, access log and span (src/telemetry/pipeline-obs.ts): timed to the response head.
  const obs: PipelineObs = { t0: performance.now(), tUp: 0, rule: undefined, pool: undefined, local: false, state: undefined, span: telemetry.tracer?.start(req.headers.get('traceparent'), req.headers.get('tracestate')) }
  const res = await serveRequest(req, port, conn, deps, hostHeader, obs)
  observePipeline(obs, req, res, port, conn.clientIp, hostHeader, res !== undefined && localResponses.has(res))
  return res
}

async function serveRequest(req: Request, port: PortPlan, conn: Connection, deps: ProxyDeps, hostHeader: string | null, obs: PipelineObs | undefined): Promise<Response | undefined> {
  // Failures are answered here, in the same async frame: a .catch() per request would add a
  // promise and a reaction. `return await` keeps them inside the try (and costs fewer ticks
  // than returning the promise, which the async function would then have to adopt).
  try {
    const url = req.url
    const { path, query } = splitTarget(url)
    const host = normalizeHost(hostHeader)
    // Bodies are counted and timed as they stream (request-guard.ts): the proxy reads the guarded request.
    const body = conn.limits ? BodyGuard.wrap(req, conn.limits.bodyTimeoutMs) : undefined
    const state = new RequestState(body?.req ?? req, req.method, path, query, host, conn.clientIp, port.scheme, conn.listenerPort, hostHeader)
    if (obs) {
      obs.state = state
      if (obs.span) state.setUpstreamHeader('traceparent', `00-${obs.span.traceId}-${obs.span.spanId}-${obs.span.sampled ? '01' : '00'}`)
    }

    if (isMisdirected(port.router, conn.serverName, host)) return errorResponse(421, 'misdirected request')
    const found = port.router.route(host, state)
    if (!found) return errorResponse(404, 'no route')
    const route = found.rule
    if (obs) obs.rule = route
    const tooLarge = body?.guard.limit(route.ir.maxBodyBytes ?? conn.limits!.maxBodyBytes)
    if (tooLarge) return tooLarge
    // Streaming routes (SSE, long-poll) may stay quiet longer than the server-wide idle timeout.
    if (route.ir.streamIdleTimeoutMs !== undefined) conn.setIdleTimeout(req, Math.min(255, Math.ceil(route.ir.streamIdleTimeoutMs / 1000)))

    if (route.requestFilters.length > 0) {
      let verdict: Verdict | Promise<Verdict> = runRequestHooks(route.requestFilters, state)
      if (verdict instanceof Promise) verdict = await verdict
      if (verdict) return local(obs, finishLocal(state, replyResponse(verdict), route.responseFilters))
    }

    const action = route.action
    switch (action.kind) {
      case 'respond':
        return local(obs, finishLocal(state, new Response(action.body ?? null, { status: action.status }), route.responseFilters))
      case 'redirect':
        return local(obs, finishLocal(state, action.respond(state), route.responseFilters))
      case 'forward': {
        let choice: BackendChoice | undefined
        // sessionPersistence: the variant the client was pinned to, else a weighted draw it is pinned to from now on
        let assign: ResponseHook | undefined
        if (action.sticky) [choice, assign] = stickyChoice(action, state)
        else choice = chooseBackend(action)
        if (choice?.composite) return await composite(choice, state, route, deps, conn, obs, assign)
        if (!choice || !choice.pool) {
          deps.logger.debug('invalid backend', { route: route.id, reason: choice?.invalid ?? 'all weights are zero' })
          return errorResponse(500, 'invalid backend')
        }
        if (choice.requestFilters.length > 0) {
          let verdict: Verdict | Promise<Verdict> = runRequestHooks(choice.requestFilters, state)
          if (verdict instanceof Promise) verdict = await verdict
          if (verdict) return local(obs, finishLocal(state, replyResponse(verdict), route.responseFilters))
        }
        if (obs) {
          obs.pool = choice.pool as RuntimePool
          obs.tUp = performance.now()
          // The id the proxy would generate, made here so the access log and span carry it.
          if ((telemetry.log !== undefined || obs.span !== undefined) && state.generateRequestId && state.requestId === undefined) state.setUpstreamHeader('x-request-id', crypto.randomUUID())
        }
        if (choice.pool.members.length === 0) return errorResponse(503, 'no healthy upstream')
        const responseFilters = assign ? [route.responseFilters, choice.responseFilters, [assign]] : [route.responseFilters, choice.responseFilters]
        if (conn.upgradeWebSocket) return await conn.upgradeWebSocket(state, route, choice.pool, responseFilters, port)
        if (route.chain.bodies.length > 0) return await wrapBodies(route.chain, state, await forwardOn(req, state, route, choice.pool, responseFilters, deps, conn, body?.guard))
        return await forwardOn(req, state, route, choice.pool, responseFilters, deps, conn, body?.guard)
      }
    }
  } catch (err) {
    deps.logger.error('request failed', { port: conn.listenerPort, error: String(err) })
    return errorResponse(500, 'internal error')
  }
}

/** A Composite backendRef: its backendRef filters, then the members (src/dataplane/composite/serve.ts). */
async function composite(choice: BackendChoice, state: RequestState, route: RoutePlan, deps: ProxyDeps, conn: Connection, obs: PipelineObs | undefined, assign: ResponseHook | undefined): Promise<Response> {
  if (conn.upgradeWebSocket) return errorResponse(400, 'a Composite backend does not take WebSocket upgrades')
  if (choice.requestFilters.length > 0) {
    let verdict: Verdict | Promise<Verdict> = runRequestHooks(choice.requestFilters, state)
    if (verdict instanceof Promise) verdict = await verdict
    if (verdict) return local(obs, finishLocal(state, replyResponse(verdict), route.responseFilters))
  }
  if (obs) {
    obs.tUp = performance.now()
    obs.pool = choice.composite!.metrics
  }
  const res = await serveComposite(choice.composite!, state, route, deps, obs?.span)
  if (assign) assign(state, res.headers, res.status)
  return finishLocal(state, finishLocal(state, res, choice.responseFilters), route.responseFilters)
}

/** The pinned variant when the client's session names one still in the rule; else a new draw and the hook that pins it. */
function stickyChoice(action: ForwardPlan, state: RequestState): [BackendChoice | undefined, ResponseHook | undefined] {
  const sticky = action.sticky!
  const now = Date.now()
  const pinned = pinnedIndex(sticky, state, now)
  if (pinned !== undefined) return [action.choices[pinned], undefined]
  const drawn = chooseIndex(action)
  if (drawn === undefined) return [undefined, undefined]
  return [action.choices[drawn], assignHook(sticky, drawn, now)]
}

function forwardOn(
  req: Request,
  state: RequestState,
  route: RoutePlan,
  pool: NonNullable<BackendChoice['pool']>,
  responseFilters: readonly (readonly ResponseHook[])[],
  deps: ProxyDeps,
  conn: Connection,
  guard: BodyGuard | undefined,
): Promise<Response> {
  if (conn.limits) return forwardWithLimits(req, state, route, pool, responseFilters, deps, conn, conn.limits, guard)
  // Bodies that stream (either way) outlive Bun's idle timer: the guard replaces it.
  const streams = new StreamGuard(req, conn, route.ir.streamIdleTimeoutMs)
  return forward(state, route, pool, responseFilters, deps, streams)
}

/**
 * Policies that transform response bodies (compression) may replace the upstream body, in chain
 * order. Their header edits go to the relayed response's own (mutable) Headers; a response no
 * policy replaced is returned as it is, byte body and all, without a promise.
 */
function wrapBodies(chain: Chain, state: RequestState, res: Response, from = 0, replaced?: ResponseBody): Response | Promise<Response> {
  const head = { status: res.status, headers: res.headers }
  const current = () => (replaced === undefined ? res.body : replaced instanceof Uint8Array ? new Blob([replaced as Uint8Array<ArrayBuffer>]).stream() : replaced)
  for (let i = from; i < chain.bodies.length; i++) {
    const next = chain.bodies[i]!.wrapResponseBody!(head, state, current)
    if (next instanceof Promise) return next.then((body) => wrapBodies(chain, state, res, i + 1, body))
    if (next !== undefined) replaced = next
  }
  return replaced === undefined ? res : new Response(replaced as ReadableStream<Uint8Array>, { status: res.status, statusText: res.statusText, headers: head.headers })
}

/** A response the gateway made itself (policy verdict, direct response, redirect): counted as a local reply. */
function local(obs: PipelineObs | undefined, res: Response): Response {
  if (obs) obs.local = true
  return res
}

/** Apply response-phase hooks to a locally generated response. */
function finishLocal(state: RequestState, res: Response, hooks: readonly ResponseHook[]): Response {
  if (hooks.length === 0) return res
  for (const hook of hooks) hook(state, res.headers, res.status)
  return res
}

/**
 * Path and query from Bun's absolute req.url ("http://host:port/path?q"), without URL parsing:
 * the path is kept exactly as received (no normalisation, no decoding).
 */
export function splitTarget(url: string): { path: string; query: string } {
  const schemeEnd = url.indexOf('://')
  const pathStart = url.indexOf('/', schemeEnd < 0 ? 0 : schemeEnd + 3)
  if (pathStart < 0) return { path: '/', query: '' }
  const q = url.indexOf('?', pathStart)
  return q < 0 ? { path: url.slice(pathStart), query: '' } : { path: url.slice(pathStart, q), query: url.slice(q) }
}

export type { RoutePlan }
