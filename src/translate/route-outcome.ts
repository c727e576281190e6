/**
 * One route's part of a translation, as data: its status, the rules it contributes to HTTP
 * listeners or L4 ports (with the policies attached to the route and its rules), the listeners it counts in attachedRoutes and the backend effects of its
 * references. Computing it reads only the route and the "world" (Gateways, Services, grants,
 * policies...), never another route, so an unchanged route in an unchanged world has the same
 * outcome. translate() computes every route's and applies them in view order (applyOutcome);
 * the Translator keeps them and adds or removes only those of changed routes (totals.ts).
 */
import type { PolicyIndex } from '../policy/attach.ts'
import type { K8sObject } from '../store/kinds.ts'
import { keyOf } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import { attachedListeners, resolveParents, routeParentsStatus, type ParentResult } from './attach.ts'
import type { BackendEffect, Backends } from './backends.ts'
import { Context, generationOf, nsOf } from './context.ts'
import type { GatewayState, ListenerState } from './gateway.ts'
import { translateHttpRoute } from './http-route.ts'
import { translateGrpcRoute } from './grpc-route.ts'
import { translateL4Route } from './l4-route.ts'
import { COND, REASON } from './reasons.ts'
import type { HttpContribution, L4Contribution } from './snapshot.ts'
import type { Condition, StatusMap } from './types.ts'
import { timestampOf } from './util.ts'

export interface RouteOutcome {
  /** "Kind/ns/name", the route's status key. */
  readonly key: string
  /** Undefined when no parentRef names one of our Gateways (not our status to write). */
  readonly status: Record<string, unknown> | undefined
  readonly http: readonly HttpContribution[]
  readonly l4: readonly L4Contribution[]
  /** Listeners whose attachedRoutes this route increments. */
  readonly counted: readonly ListenerState[]
  readonly effects: readonly BackendEffect[]
}

/** Where outcomes land: the translation's accumulators. */
export interface OutcomeSink {
  readonly status: StatusMap
  readonly http: HttpContribution[]
  readonly l4: L4Contribution[]
  readonly backends: Backends
}

export function applyOutcome(o: RouteOutcome, sink: OutcomeSink): void {
  if (o.status !== undefined) sink.status[o.key] = o.status
  for (const c of o.http) sink.http.push(c)
  for (const c of o.l4) sink.l4.push(c)
  for (const l of o.counted) l.attachedRoutes++
  sink.backends.apply(o.effects)
}

export function httpRouteOutcome(ctx: Context, route: K8sObject, gateways: ReadonlyMap<string, GatewayState>, backends: Backends, policies?: PolicyIndex): RouteOutcome {
  const http: HttpContribution[] = []
  return guard(ctx, route, gateways, backends, http, [], (parents, gws, register) => {
    const t = translateHttpRoute(route, backends, gws, register, policies)
    for (const p of parents) if (p.accepted.status === 'True') for (const a of p.attachments) http.push({ attachment: a, rules: t.rules })
    return { resolvedRefs: t.resolvedRefs, unsupported: t.unsupported }
  })
}

export function grpcRouteOutcome(ctx: Context, route: K8sObject, gateways: ReadonlyMap<string, GatewayState>, backends: Backends, policies?: PolicyIndex): RouteOutcome {
  const http: HttpContribution[] = []
  return guard(ctx, route, gateways, backends, http, [], (parents, gws, register) => {
    const t = translateGrpcRoute(route, backends, gws, register, policies)
    for (const p of parents) if (p.accepted.status === 'True') for (const a of p.attachments) http.push({ attachment: a, rules: t.rules })
    return { resolvedRefs: t.resolvedRefs, unsupported: t.unsupported }
  })
}

export function l4RouteOutcome(ctx: Context, route: K8sObject, gateways: ReadonlyMap<string, GatewayState>, backends: Backends, policies?: PolicyIndex): RouteOutcome {
  const l4: L4Contribution[] = []
  return guard(ctx, route, gateways, backends, [], l4, (parents, gws, register) => {
    // BackendTLSPolicy ancestors: only Gateways where the route terminates TLS (and so re-encrypts)
    const reencrypting = gws.filter((g) =>
      parents.some((p) => p.accepted.status === 'True' && p.attachments.some((a) => a.gateway.key === g && a.listener.protocol === 'TLS' && a.listener.tlsMode === 'Terminate')),
    )
    const t = translateL4Route(route, backends, route.kind === 'TLSRoute' ? reencrypting : [], register, policies)
    for (const p of parents)
      if (p.accepted.status === 'True')
        for (const a of p.attachments)
          l4.push({ attachment: a, kind: route.kind, namespace: nsOf(route), name: route.metadata.name, created: timestampOf(route.metadata.creationTimestamp), rules: t.rules })
    return { resolvedRefs: t.resolvedRefs, unsupported: t.unsupported }
  })
}

type RouteBody = (parents: readonly ParentResult[], gateways: readonly string[], register: boolean) => { resolvedRefs: Condition; unsupported?: Condition }

/**
 * Resolves a route's parents, runs the kind-specific body and computes its status. A throw
 * inside (a bug meeting unexpected input) costs only this route: it is reported, not served.
 * Whatever the body contributed before a throw stays in the outcome, as it always has.
 */
function guard(
  ctx: Context,
  route: K8sObject,
  gateways: ReadonlyMap<string, GatewayState>,
  backends: Backends,
  http: HttpContribution[],
  l4: L4Contribution[],
  body: RouteBody,
): RouteOutcome {
  const key = keyOf(route)
  let parents: ParentResult[] = []
  let status: Record<string, unknown> | undefined
  let counted: ListenerState[] = []
  const effects = backends.recording(() => {
    try {
      parents = resolveParents(ctx, route, gateways)
      if (parents.length === 0) return // no parent is ours: not our status to write
      const accepted = parents.filter((p) => p.accepted.status === 'True')
      const gws = [...new Set(accepted.map((p) => p.gateway.key))].sort()
      const { resolvedRefs, unsupported } = body(parents, gws, accepted.length > 0)
      counted = attachedListeners(parents)
      // most routes of a translation have the same status (one parent, accepted, resolved): one object
      const own = { parents: routeParentsStatus(parents, ctx.opts.controllerName, resolvedRefs, unsupported) }
      status = backends.sharer.share(`status ${JSON.stringify(own)}`, own)
    } catch (e) {
      const gen = generationOf(route)
      const msg = `internal error translating this route: ${e instanceof Error ? e.message : String(e)}`
      if (parents.length)
        status = {
          parents: routeParentsStatus(
            parents.map((p) => ({ ...p, attachments: [] })),
            ctx.opts.controllerName,
            condition(COND.ResolvedRefs, 'False', REASON.Invalid, msg, gen),
            condition(COND.Accepted, 'False', REASON.Invalid, msg, gen),
          ),
        }
    }
  })
  return { key, status, http, l4, counted, effects }
}
