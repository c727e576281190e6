/**
 * translate(view, opts) → { ir, status }: Gateway API resources in, the data plane's snapshot
 * and every computed status out. Pure (no clock, no I/O, no randomness) and total: bad input
 * becomes conditions, and a failure while translating one object is contained to that object.
 *
 * Order matters only where the spec says so: GatewayClasses decide which Gateways are ours,
 * Gateways decide listeners (and conflicts between them), routes attach to listeners, and
 * listener status is rendered last because it counts attached routes.
 */
import type { K8sObject } from '../store/kinds.ts'
import { keyOf } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import { condition } from '../status/conditions.ts'
import { countAttachments, resolveParents, routeParentsStatus, type ParentResult } from './attach.ts'
import { applyBackendTlsPolicies } from './backend-tls.ts'
import { Backends } from './backends.ts'
import { Context, generationOf, nsOf } from './context.ts'
import { buildGateways, gatewayClasses, gatewayStatus, type GatewayState } from './gateway.ts'
import { translateHttpRoute } from './http-route.ts'
import { translateL4Route } from './l4-route.ts'
import { COND, REASON } from './reasons.ts'
import { buildHttpPorts, buildL4Ports, programmedListeners, type HttpContribution, type L4Contribution } from './snapshot.ts'
import type { StatusMap, TranslateOptions, TranslateResult } from './types.ts'
import { timestampOf } from './util.ts'

export type { TranslateOptions, TranslateResult, StatusMap, Condition } from './types.ts'

export function translate(view: ResourceView, opts: TranslateOptions): TranslateResult {
  const ctx = new Context(view, opts)
  const status: StatusMap = {}
  const ours = gatewayClasses(ctx, status)
  const gateways = buildGateways(ctx, ours)
  const byKey = new Map<string, GatewayState>(gateways.map((g) => [g.key, g]))
  const backends = new Backends(ctx)
  // policies first: whether a Service speaks TLS changes how its backendRefs resolve
  const finishPolicies = applyBackendTlsPolicies(ctx, backends, status)

  const http: HttpContribution[] = []
  const l4: L4Contribution[] = []

  for (const route of view.httpRoutes) {
    guard(ctx, route, status, byKey, (parents, gws, register) => {
      const t = translateHttpRoute(route, backends, gws, register)
      for (const p of parents) if (p.accepted.status === 'True') for (const a of p.attachments) http.push({ attachment: a, rules: t.rules })
      return { resolvedRefs: t.resolvedRefs, unsupported: t.unsupported }
    })
  }
  for (const route of [...view.tlsRoutes, ...view.tcpRoutes, ...view.udpRoutes]) {
    guard(ctx, route, status, byKey, (parents, gws, register) => {
      const t = translateL4Route(route, backends, gws, register)
      for (const p of parents)
        if (p.accepted.status === 'True')
          for (const a of p.attachments)
            l4.push({ attachment: a, kind: route.kind, namespace: nsOf(route), name: route.metadata.name, created: timestampOf(route.metadata.creationTimestamp), rules: t.rules })
      return { resolvedRefs: t.resolvedRefs, unsupported: t.unsupported }
    })
  }

  for (const g of gateways) status[keyOf(g.gateway)] = gatewayStatus(g)
  finishPolicies()

  const listeners = programmedListeners(gateways)
  return {
    ir: { revision: view.revision, http: buildHttpPorts(listeners, http), l4: buildL4Ports(listeners, l4), pools: backends.pools() },
    status: sortKeys(status),
  }
}

type RouteBody = (
  parents: readonly ParentResult[],
  gateways: readonly string[],
  register: boolean,
) => { resolvedRefs: ReturnType<typeof condition>; unsupported?: ReturnType<typeof condition> }

/**
 * Resolves a route's parents, runs the kind-specific body and writes its status. A throw
 * inside (a bug meeting unexpected input) costs only this route: it is reported, not served.
 */
function guard(ctx: Context, route: K8sObject, status: StatusMap, gateways: ReadonlyMap<string, GatewayState>, body: RouteBody): void {
  const key = keyOf(route)
  let parents: ParentResult[] = []
  try {
    parents = resolveParents(ctx, route, gateways)
    if (parents.length === 0) return // no parent is ours: not our status to write
    const accepted = parents.filter((p) => p.accepted.status === 'True')
    const gws = [...new Set(accepted.map((p) => p.gateway.key))].sort()
    const { resolvedRefs, unsupported } = body(parents, gws, accepted.length > 0)
    countAttachments(parents)
    status[key] = { parents: routeParentsStatus(parents, ctx.opts.controllerName, resolvedRefs, unsupported) }
  } catch (e) {
    const gen = generationOf(route)
    const msg = `internal error translating this route: ${e instanceof Error ? e.message : String(e)}`
    if (parents.length)
      status[key] = {
        parents: routeParentsStatus(
          parents.map((p) => ({ ...p, attachments: [] })),
          ctx.opts.controllerName,
          condition(COND.ResolvedRefs, 'False', REASON.Invalid, msg, gen),
          condition(COND.Accepted, 'False', REASON.Invalid, msg, gen),
        ),
      }
  }
}

function sortKeys(status: StatusMap): StatusMap {
  const out: StatusMap = {}
  for (const k of Object.keys(status).sort()) out[k] = status[k]!
  return out
}
