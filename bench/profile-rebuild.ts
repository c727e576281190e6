#!/usr/bin/env bun
/**
 * Where a rebuild's time goes at N HTTPRoutes, in process, on demand (never in CI): parse the
 * manifests once, build once (start-up, untimed), then time store view → translate → validate →
 * compile after one change, ROUNDS times. Like the controller, one Translator and one registry
 * live across rebuilds; COLD=1 translates from scratch every round (translate(view, opts)).
 * CHANGE picks the change: route (default: one new route, the "new route → first 200" path),
 * endpoints (the upstream's EndpointSlice: pools only) or service (the upstream Service: a new
 * world, everything rebuilt). `total` is what a change waits for before it serves; the status
 * map is merged after (the controller publishes it once the plan is live).
 *
 *   npx bun bench/profile-rebuild.ts                  # ROUTES=5000 ROUNDS=10 CHANGE=route
 *   npx bun --cpu-prof-md --cpu-prof-dir=/tmp/prof bench/profile-rebuild.ts
 */
import { ResourceStore } from '../src/store/store.ts'
import { parseManifests } from '../src/sources/manifests.ts'
import { translate, Translator } from '../src/translate/index.ts'
import { validateSnapshot } from '../src/ir/validate.ts'
import { compile } from '../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../src/dataplane/upstream/registry.ts'
import { gatewayManifests, localService, percentile, prefixRoute } from './lib.ts'

const ROUTES = Number(process.env.ROUTES ?? 5000)
const ROUNDS = Number(process.env.ROUNDS ?? 10)
const CHANGE = process.env.CHANGE ?? 'route'

const store = new ResourceStore()
const text = [gatewayManifests(8080, 9090), ...Array.from({ length: ROUTES }, (_, i) => prefixRoute(`r${i}`, `/r${i}`))].join('---\n')
for (const o of parseManifests(text, 'bench').objects) store.upsert(o)
const registry = new EndpointRegistry()
const opts = { controllerName: 'portico.dev/gateway-controller' }
const translator = new Translator(opts)
const translateView = process.env.COLD === '1' ? (view: ReturnType<typeof store.view>) => translate(view, opts) : (view: ReturnType<typeof store.view>) => translator.translate(view)
compile(translateView(store.view()).ir, registry) // start-up build, untimed

const phases: Record<string, number[]> = { view: [], translate: [], validate: [], compile: [], total: [], 'status (after)': [] }
for (let k = 0; k < ROUNDS; k++) {
  const change =
    CHANGE === 'endpoints' ? localService('upstream', 9090).replace('127.0.0.1', `127.0.0.${2 + k}`) : CHANGE === 'service' ? localService('upstream', 9090).replace('port: 80,', `port: 80, appProtocol: x${k},`) : prefixRoute(`new-${k}`, `/new-${k}`)
  for (const o of parseManifests(change, 'bench').objects) store.upsert(o)
  const t0 = performance.now()
  const view = store.view()
  const t1 = performance.now()
  const result = translateView(view)
  const t2 = performance.now()
  const problems = validateSnapshot(result.ir)
  const t3 = performance.now()
  compile(result.ir, registry)
  const t4 = performance.now()
  // the controller reads the status map once the plan is live (merged on first read)
  void result.status
  phases['status (after)']!.push(performance.now() - t4)
  if (problems.length) throw new Error(problems.join("\n"))
  if (result.ir.http[0]?.listeners[0] === undefined) throw new Error("nothing attached: check the GatewayClass")
  phases.view!.push(t1 - t0)
  phases.translate!.push(t2 - t1)
  phases.validate!.push(t3 - t2)
  phases.compile!.push(t4 - t3)
  phases.total!.push(t4 - t0)
}
console.log(`rebuild at ${ROUTES} routes after one change (${CHANGE}), ${ROUNDS} rounds${process.env.COLD === '1' ? ', cold translate' : ''}, ms p50 / max`)
for (const [name, xs] of Object.entries(phases)) console.log(`${name.padEnd(10)} ${percentile(xs, 50).toFixed(1).padStart(7)} ${Math.max(...xs).toFixed(1).padStart(7)}`)
