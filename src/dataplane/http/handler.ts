/**
 * The request pipeline for one HTTP port: match → rule filters → action
 * (respond / redirect / forward → backend filters → proxy). Reads the plan once.
 */
import type { PortPlan, RoutePlan } from '../snapshot.ts'
import { chooseBackend } from '../snapshot.ts'
import { normalizeHost } from './match.ts'
import { RequestState } from './context.ts'
import type { ResponseFilter } from './filters/types.ts'
import { errorResponse, forward, type ProxyDeps } from './proxy.ts'
import { isMisdirected } from './tls/misdirected.ts'
import { StreamGuard } from './streaming.ts'
import type { HttpLimits } from './limits.ts'
import { BodyGuard } from './request-guard.ts'
import { forwardWithLimits } from './guarded-forward.ts'
import type { WebSocketUpgrader } from './websocket.ts'

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
export async function handleRequest(req: Request, port: PortPlan, conn: Connection, deps: ProxyDeps, hostHeader: string | null = req.headers.get('host')): Promise<Response | undefined> {
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

    if (isMisdirected(port.router, conn.serverName, host)) return errorResponse(421, 'misdirected request')
    const found = port.router.route(host, state)
    if (!found) return errorResponse(404, 'no route')
    const route = found.rule
    const tooLarge = body?.guard.limit(route.ir.maxBodyBytes ?? conn.limits!.maxBodyBytes)
    if (tooLarge) return tooLarge
    // Streaming routes (SSE, long-poll) may stay quiet longer than the server-wide idle timeout.
    if (route.ir.streamIdleTimeoutMs !== undefined) conn.setIdleTimeout(req, Math.min(255, Math.ceil(route.ir.streamIdleTimeoutMs / 1000)))

    for (const filter of route.requestFilters) {
      const early = filter(state)
      if (early) return finishLocal(state, early, route.responseFilters)
    }

    const action = route.action
    switch (action.kind) {
      case 'respond':
        return finishLocal(state, new Response(action.body ?? null, { status: action.status }), route.responseFilters)
      case 'redirect':
        return finishLocal(state, action.respond(state), route.responseFilters)
      case 'forward': {
        const choice = chooseBackend(action)
        if (!choice || !choice.pool) {
          deps.logger.debug('invalid backend', { route: route.id, reason: choice?.invalid ?? 'all weights are zero' })
          return errorResponse(500, 'invalid backend')
        }
        for (const filter of choice.requestFilters) {
          const early = filter(state)
          if (early) return finishLocal(state, early, route.responseFilters)
        }
        if (choice.pool.members.length === 0) return errorResponse(503, 'no healthy upstream')
        const responseFilters = [route.responseFilters, choice.responseFilters]
        if (conn.upgradeWebSocket) return await conn.upgradeWebSocket(state, route, choice.pool, responseFilters, port)
        if (conn.limits) return await forwardWithLimits(req, state, route, choice.pool, responseFilters, deps, conn, conn.limits, body?.guard)
        // Bodies that stream (either way) outlive Bun's idle timer: the guard replaces it.
        const streams = new StreamGuard(req, conn, route.ir.streamIdleTimeoutMs)
        return await forward(state, route, choice.pool, responseFilters, deps, streams)
      }
    }
  } catch (err) {
    deps.logger.error('request failed', { port: conn.listenerPort, error: String(err) })
    return errorResponse(500, 'internal error')
  }
}

/** Apply response-phase filters to a locally generated response. */
function finishLocal(state: RequestState, res: Response, filters: readonly ResponseFilter[]): Response {
  if (filters.length === 0) return res
  for (const filter of filters) filter(state, res.headers)
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
