/**
 * The limits around one forwarded request: a default upstream timeout for routes without one,
 * Bun's idle timer stretched while the backend thinks (Bun counts that wait as idleness and
 * would cut the client at the keep-alive timeout) and put back afterwards, and the body guard's
 * 413/408 in place of whatever the aborted upstream exchange produced.
 */
import type { RoutePlan } from '../snapshot.ts'
import { responseWaitSeconds, type HttpLimits } from './limits.ts'
import type { BodyGuard } from './request-guard.ts'
import { StreamGuard, type IdleControl } from './streaming.ts'
import type { RequestState } from './context.ts'
import type { ResponseHook } from './chain.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import { forward, type ProxyDeps } from './proxy.ts'
import { idleStretcher, LAZY_MIN_IDLE_SECONDS, PendingWait, setIdle } from './idle-stretch.ts'

/** A StreamGuard that remembers whether it took over Bun's timer (it then restores it itself). */
class TrackedStreamGuard extends StreamGuard {
  engaged = false

  override watchUpload(body: ReadableStream<Uint8Array>, contentLength: string | null): ReadableStream<Uint8Array> {
    const out = super.watchUpload(body, contentLength)
    if (out !== body) this.engaged = true
    return out
  }

  override watchDownload(body: ReadableStream<Uint8Array>, contentLength: string | null): ReadableStream<Uint8Array> {
    const out = super.watchDownload(body, contentLength)
    if (out !== body) this.engaged = true
    return out
  }
}

/** How long a chunked body's first chunk may lag its head before the request is forwarded anyway. */
const FIRST_CHUNK_WAIT_MS = 20

/** Route copies carrying the default upstream timeout, made once per route and limits. */
const withDefaults = new WeakMap<HttpLimits, WeakMap<RoutePlan, RoutePlan>>()

/** The route as the proxy should see it: the default timeout applies when the route sets none. */
export function withDefaultTimeout(route: RoutePlan, limits: HttpLimits): RoutePlan {
  if (route.timeoutDisabled || route.requestTimeoutMs !== undefined || route.backendTimeoutMs !== undefined || limits.upstreamTimeoutMs <= 0) return route
  let cache = withDefaults.get(limits)
  if (!cache) withDefaults.set(limits, (cache = new WeakMap()))
  let copy = cache.get(route)
  if (!copy) cache.set(route, (copy = { ...route, requestTimeoutMs: limits.upstreamTimeoutMs }))
  return copy
}

/** Route copies without their response timeouts: the guard times the wait itself (bodyLast). */
const untimed = new WeakMap<RoutePlan, RoutePlan>()

/**
 * A streamed body (no retry or mirror buffers it first): the proxy's timeouts would count the
 * upload. The route goes without them and the wait for response headers starts when the body has
 * been read to its end; the body deadline (the guard's 408) governs a slow upload. Returns the
 * route to forward with and a function that stops the timer, or undefined to keep the route.
 */
function bodyLast(route: RoutePlan, state: RequestState, guard: BodyGuard): { route: RoutePlan; stop: () => void } | undefined {
  if (route.timeoutDisabled || route.retry !== undefined || state.mirrors !== undefined || guard.complete) return undefined
  const timeoutMs = Math.min(route.requestTimeoutMs ?? Infinity, route.backendTimeoutMs ?? Infinity)
  if (timeoutMs === Infinity) return undefined
  let copy = untimed.get(route)
  if (!copy) untimed.set(route, (copy = { ...route, requestTimeoutMs: undefined, backendTimeoutMs: undefined }))
  let timer: Timer | undefined
  let stopped = false
  guard.whenComplete(() => {
    if (!stopped) timer = setTimeout(() => guard.upstreamTimeout(), timeoutMs)
  })
  return {
    route: copy,
    stop: () => {
      stopped = true
      if (timer) clearTimeout(timer)
    },
  }
}

export async function forwardWithLimits(
  req: Request,
  state: RequestState,
  route: RoutePlan,
  pool: RuntimePool,
  responseFilters: readonly (readonly ResponseHook[])[],
  deps: ProxyDeps,
  conn: IdleControl,
  limits: HttpLimits,
  guard: BodyGuard | undefined,
): Promise<Response> {
  // No await without a guard (a bodiless request): awaiting undefined still costs a microtask.
  if (guard) {
    const malformed = await guard.firstChunk(FIRST_CHUNK_WAIT_MS)
    if (malformed) return malformed
  }
  const effective = withDefaultTimeout(route, limits)
  const streams = new TrackedStreamGuard(req, conn, route.ir.streamIdleTimeoutMs ?? limits.streamIdleSeconds * 1000)
  let wait = responseWaitSeconds(route.timeoutDisabled ? 0 : effective.requestTimeoutMs, effective.backendTimeoutMs, 1 + (route.retry?.attempts ?? 0), limits)
  // A route's stream idle timeout already widened the timer (handler.ts): never narrow it.
  const routeIdle = route.ir.streamIdleTimeoutMs
  if (routeIdle !== undefined && wait !== 0) wait = routeIdle === 0 || routeIdle > 255_000 ? 0 : Math.max(wait, Math.ceil(routeIdle / 1000))
  let stretched = wait !== conn.idleTimeoutSeconds
  // With a keep-alive timeout that outlasts the sweep, only slow requests get stretched (idle-stretch.ts).
  const pending = stretched && conn.idleTimeoutSeconds >= LAZY_MIN_IDLE_SECONDS ? new PendingWait(req, conn, wait, streams) : undefined
  if (pending) idleStretcher.defer(pending)
  else if (stretched) setIdle(req, conn, wait)
  let res: Response
  const timed = guard ? bodyLast(effective, state, guard) : undefined
  try {
    res = await forward(state, timed ? timed.route : effective, pool, responseFilters, deps, streams)
  } finally {
    timed?.stop()
    if (pending) {
      pending.done = true
      stretched = pending.stretched
    }
  }
  const failure = guard?.failure
  if (failure) {
    res.body?.cancel().catch(() => {})
    res = failure
  }
  // A streaming body hands the timer back itself when it ends (streaming.ts).
  if (stretched && !streams.engaged) setIdle(req, conn, conn.idleTimeoutSeconds)
  return res
}
