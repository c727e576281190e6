/**
 * Serving a Composite backendRef: every member is called at once (through the ordinary proxy,
 * so pools, passive health, circuit breakers and retries apply), each within its own deadline
 * inside the Composite's; the JSON answers are shaped and merged in declared order
 * (shape.ts), so the output never depends on which member answered first.
 *
 * Failure policy:
 *  - a required member fails (no answer in time, a non-2xx status, no endpoint) → 502 with a
 *    JSON error naming the member, and nothing about why (no upstream detail reaches clients);
 *  - a member answers something that is not JSON → 502 naming it (required), or treated as
 *    failed (optional);
 *  - an optional member fails → the answer goes out without it (its group key null),
 *    `X-Portico-Completed: false`, status `partialStatus`, and `Cache-Control: no-store` so an
 *    incomplete answer is never cached;
 *  - two members set the same key with onConflict Error → 502 naming the key.
 * A failed required member ends the request at once: the other calls are cancelled.
 */
import type { RoutePlan } from '../snapshot.ts'
import { RequestState } from '../http/context.ts'
import { forward, localResponses, type ProxyDeps } from '../http/proxy.ts'
import { requestMetrics } from '../../telemetry/request-metrics.ts'
import { telemetry } from '../../telemetry/observe.ts'
import { newSpanId, traceparentOf, type SpanContext } from '../../telemetry/tracing.ts'
import type { CompositePlan, MemberPlan } from './plan.ts'
import { bodyFor, isObject, mergeMembers, shapeMember } from './shape.ts'
import { expand, pathParams } from './template.ts'

/** Why a member call did not give a usable answer (also the metric's outcome label). */
type Failure = 'error' | 'timeout' | 'not_json' | 'unavailable' | 'cancelled'
type Outcome = { readonly value: unknown } | { readonly failure: Failure }

/** Largest client body read for splitting (bigger bodies are refused with 413). */
export const MAX_SPLIT_BODY_BYTES = 1024 * 1024

/** Fields of the client's request that do not carry over to a member call (each gets its own body). */
const NOT_FORWARDED = ['content-length', 'content-type', 'transfer-encoding', 'expect', 'accept-encoding', 'accept', 'traceparent']

export async function serveComposite(plan: CompositePlan, state: RequestState, route: RoutePlan, deps: ProxyDeps, span: SpanContext | undefined): Promise<Response> {
  const ir = plan.ir
  let body: Record<string, unknown> | undefined
  if (plan.wantsBody && state.req.body !== null) {
    const read = await readJsonBody(state.req)
    if ('error' in read) return json(read.status, { error: read.error })
    body = read.body
  }
  const params = pathParams(ir.pathPattern, state.originalPath)
  const lookup = (name: string) => params.get(name) ?? state.queryParam(name)
  const targets: { path: string; query: string }[] = []
  for (const m of plan.members) {
    const t = expand(m.ir.path, lookup)
    if ('missing' in t) return json(400, { error: 'missing parameter', parameter: t.missing })
    targets.push(t)
  }
  const base = new Headers(state.modifiedUpstreamHeaders ?? state.req.headers)
  for (const name of NOT_FORWARDED) base.delete(name)
  base.set('accept', 'application/json')
  base.set('accept-encoding', 'identity')

  const cancel = new AbortController()
  const outcomes = await settle(plan, (m, i) => callMember(m, targets[i]!, state, route, deps, base, body, span, ir.id, cancel.signal))
  cancel.abort()

  let incomplete = false
  const parts: [string, Record<string, unknown>][] = []
  for (let i = 0; i < plan.members.length; i++) {
    const m = plan.members[i]!.ir
    const o = outcomes[i]
    // still running: a required member failed first (it is named below, or was named above)
    if (o === undefined) continue
    if ('failure' in o) {
      if (m.required) return json(502, o.failure === 'not_json' ? { error: 'member answered with something other than JSON', member: m.name } : { error: 'required member failed', member: m.name }, false)
      incomplete = true
      // the contract: an optional member's key is absent, or null when it has a group
      if (m.group) parts.push([m.name, { [m.group]: null }])
      continue
    }
    parts.push([m.name, shapeMember(o.value, m)])
  }
  const merged = mergeMembers(parts, ir.onConflict)
  if ('conflict' in merged) return json(502, { error: 'conflicting key', key: merged.conflict, members: merged.members }, false)
  return json(incomplete ? ir.partialStatus : 200, merged.body, !incomplete)
}

/** Every member's outcome, or sooner: as soon as a required member failed (the rest stay undefined). */
function settle(plan: CompositePlan, call: (m: MemberPlan, i: number) => Promise<Outcome>): Promise<(Outcome | undefined)[]> {
  const outcomes = new Array<Outcome | undefined>(plan.members.length)
  return new Promise((resolve) => {
    let left = plan.members.length
    plan.members.forEach((m, i) =>
      call(m, i).then((o) => {
        outcomes[i] = o
        left--
        if (left === 0 || ('failure' in o && m.ir.required)) resolve([...outcomes])
      }),
    )
  })
}

function json(status: number, value: unknown, complete?: boolean): Response {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (complete !== undefined) headers['x-portico-completed'] = String(complete)
  // an incomplete or failed aggregate must not be cached anywhere
  if (complete !== true) headers['cache-control'] = 'no-store'
  return new Response(JSON.stringify(value), { status, headers })
}

async function readJsonBody(req: Request): Promise<{ body: Record<string, unknown> } | { status: number; error: string }> {
  const length = Number(req.headers.get('content-length') ?? 0)
  if (length > MAX_SPLIT_BODY_BYTES) return { status: 413, error: 'request body too large to split' }
  let text: string
  try {
    text = await req.text()
  } catch {
    return { status: 400, error: 'request body could not be read' }
  }
  if (text.length > MAX_SPLIT_BODY_BYTES) return { status: 413, error: 'request body too large to split' }
  if (text.trim() === '') return { body: {} }
  try {
    const v: unknown = JSON.parse(text)
    if (isObject(v)) return { body: v }
  } catch {}
  return { status: 400, error: 'request body must be a JSON object' }
}

async function callMember(
  m: MemberPlan,
  target: { path: string; query: string },
  state: RequestState,
  route: RoutePlan,
  deps: ProxyDeps,
  base: Headers,
  clientBody: Record<string, unknown> | undefined,
  span: SpanContext | undefined,
  compositeId: string,
  cancel: AbortSignal,
): Promise<Outcome> {
  const started = performance.now()
  const startMs = Date.now()
  const child: SpanContext | undefined = span && { traceId: span.traceId, parentId: span.spanId, spanId: newSpanId(), sampled: span.sampled, tracestate: span.tracestate }
  const outcome = await attempt(m, target, state, route, deps, base, clientBody, child, cancel)
  const seconds = (performance.now() - started) / 1000
  const label = 'failure' in outcome ? outcome.failure : 'ok'
  if (telemetry.metrics) requestMetrics.member(compositeId, m.ir.name, label, seconds)
  if (child && telemetry.tracer)
    telemetry.tracer.end({ ctx: child, name: `composite member ${m.ir.name}`, startMs, endMs: Date.now(), status: 'failure' in outcome ? 502 : 200, attributes: { 'portico.composite': compositeId, 'portico.member': m.ir.name, 'portico.outcome': label, 'http.request.method': m.ir.method ?? state.method } })
  return outcome
}

async function attempt(
  m: MemberPlan,
  target: { path: string; query: string },
  state: RequestState,
  route: RoutePlan,
  deps: ProxyDeps,
  base: Headers,
  clientBody: Record<string, unknown> | undefined,
  child: SpanContext | undefined,
  cancel: AbortSignal,
): Promise<Outcome> {
  const pool = m.pool
  if (!pool || pool.members.length === 0) return { failure: 'unavailable' }
  // the route's own request timeout (HTTPRoute timeouts.request) bounds the Composite's
  const timeoutMs = Math.min(m.timeoutMs, route.requestTimeoutMs ?? Infinity)
  // a HEAD to the aggregate still needs the members' bodies (Bun drops the body for the client)
  const method = m.ir.method ?? (state.method === 'HEAD' ? 'GET' : state.method)
  const headers = new Headers(base)
  if (child) headers.set('traceparent', traceparentOf(child))
  let payload: string | undefined
  if (m.ir.requestBody && clientBody && method !== 'GET' && method !== 'HEAD') {
    payload = JSON.stringify(bodyFor(clientBody, m.ir.requestBody.allow))
    headers.set('content-type', 'application/json')
    headers.set('content-length', String(Buffer.byteLength(payload)))
  }
  // The member's own deadline, or the composite giving up (a required member failed); either
  // aborts the call (the member request's signal).
  const controller = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  let onCancel: (() => void) | undefined
  const expired = new Promise<{ failure: 'timeout' | 'cancelled' }>((resolve) => {
    timer = setTimeout(() => {
      controller.abort()
      resolve({ failure: 'timeout' })
    }, timeoutMs)
    onCancel = () => {
      controller.abort()
      resolve({ failure: 'cancelled' })
    }
    cancel.addEventListener('abort', onCancel, { once: true })
  })
  try {
    // the URL is not what goes upstream (memberState's path, query and authority are)
    const req = new Request(`http://composite.internal${target.path}${target.query}`, {
      method,
      headers,
      body: payload ?? null,
      signal: AbortSignal.any([state.req.signal, controller.signal]),
    })
    const memberState = new RequestState(req, method, target.path, target.query, state.host, state.peerIp, state.scheme, state.listenerPort, state.authority)
    memberState.clientIp = state.clientIp
    memberState.generateRequestId = state.generateRequestId
    const memberRoute: RoutePlan = { ...route, requestTimeoutMs: timeoutMs, backendTimeoutMs: undefined, timeoutDisabled: false }
    const res = await Promise.race([forward(memberState, memberRoute, pool, [], deps), expired])
    if (!(res instanceof Response)) return res
    if (res.status < 200 || res.status > 299) {
      void res.body?.cancel().catch(() => {})
      return { failure: localResponses.has(res) && res.status === 504 ? 'timeout' : 'error' }
    }
    const text = await Promise.race([res.text(), expired])
    if (typeof text !== 'string') return text
    try {
      return { value: JSON.parse(text) as unknown }
    } catch {
      return { failure: 'not_json' }
    }
  } catch (err) {
    deps.logger.debug('composite member failed', { member: m.ir.name, error: String(err) })
    return { failure: cancel.aborted ? 'cancelled' : controller.signal.aborted ? 'timeout' : 'error' }
  } finally {
    clearTimeout(timer)
    cancel.removeEventListener('abort', onCancel!)
  }
}
