/** Translation from scratch (see index.ts for the contract). */
import { keyOf } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import { PolicyIndex } from '../policy/attach.ts'
import { applyBackendTlsPolicies } from './backend-tls.ts'
import { Backends } from './backends.ts'
import { Context } from './context.ts'
import { compositeStatuses } from './composite.ts'
import { buildGateways, gatewayClasses, gatewayStatus, listenerSetStatus, type GatewayState } from './gateway.ts'
import { applyOutcome, grpcRouteOutcome, httpRouteOutcome, l4RouteOutcome, type OutcomeSink } from './route-outcome.ts'
import { buildHttpPorts, buildL4Ports, programmedListeners, virtualHostsFrom, type HttpContribution, type L4Contribution } from './snapshot.ts'
import type { StatusMap, TranslateOptions, TranslateResult } from './types.ts'

/**
 * Translation from scratch: every route translated, its outcome applied in view order. This is
 * the reference the incremental Translator (translator.ts) must always agree with.
 */
export function translate(view: ResourceView, opts: TranslateOptions): TranslateResult {
  const ctx = new Context(view, opts)
  const status: StatusMap = {}
  const ours = gatewayClasses(ctx, status)
  const gateways = buildGateways(ctx, ours)
  const byKey = new Map<string, GatewayState>(gateways.map((g) => [g.key, g]))
  const listeners = programmedListeners(gateways)
  const backends = new Backends(ctx)
  // policies first: whether a Service speaks TLS changes how its backendRefs resolve
  const finishPolicies = applyBackendTlsPolicies(ctx, backends, status)
  const policies = PolicyIndex.build(view, gateways, listeners, backends)
  backends.apply(policies.backendEffects)

  const http: HttpContribution[] = []
  const l4: L4Contribution[] = []
  const sink: OutcomeSink = { status, http, l4, backends }
  for (const route of view.httpRoutes) applyOutcome(httpRouteOutcome(ctx, route, byKey, backends, policies), sink)
  for (const route of view.grpcRoutes) applyOutcome(grpcRouteOutcome(ctx, route, byKey, backends, policies), sink)
  for (const route of [...view.tlsRoutes, ...view.tcpRoutes, ...view.udpRoutes]) applyOutcome(l4RouteOutcome(ctx, route, byKey, backends, policies), sink)

  for (const g of gateways) {
    status[keyOf(g.gateway)] = gatewayStatus(g)
    for (const s of g.listenerSets ?? []) status[keyOf(s.set)] = listenerSetStatus(s)
  }
  finishPolicies()
  compositeStatuses(backends, status)
  policies.writeStatus(view, byKey, ctx.opts.controllerName, status)

  return {
    ir: { revision: view.revision, http: buildHttpPorts(listeners, virtualHostsFrom(http), policies), l4: buildL4Ports(listeners, l4, policies), pools: backends.pools() },
    status: sortKeys(status),
  }
}

function sortKeys(status: StatusMap): StatusMap {
  const out: StatusMap = {}
  for (const k of Object.keys(status).sort()) out[k] = status[k]!
  return out
}
