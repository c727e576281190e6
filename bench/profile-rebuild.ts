#!/usr/bin/env bun
/**
 * Where a rebuild's time goes at N HTTPRoutes, in process, on demand (never in CI): the file
 * source's parse (with its per-file memo) and the store ingest, then store view → translate →
 * validate → compile after one change, ROUNDS times. Like the gateway, one Translator, one
 * registry and one memo per file live across rebuilds; COLD=1 translates from scratch every
 * round (translate(view, opts)). CHANGE picks the change:
 *   route (default)  a new file with one new route (the "new route → first 200" path)
 *   edit             one route edited inside the file that holds all N
 *   endpoints        the upstream's EndpointSlice (pools only)
 *   service          the upstream Service (a new world: everything rebuilt)
 * and with POLICIES=1 (a BackendTrafficPolicy and a SecurityPolicy on every route, a
 * ClientTrafficPolicy on the Gateway):
 *   policy           one route's BackendTrafficPolicy edited inside the file (numRetries)
 *   newpolicy        a new file with an older SecurityPolicy on an existing route (it takes the
 *                    route over; the route's own one becomes Conflicted)
 *   gatewaypolicy    the Gateway's ClientTrafficPolicy edited (idle timeout)
 * `total` is what a change waits for before it serves; the status map is merged after (the
 * controller publishes it once the plan is live). Each phase is reported as wall ms and as CPU
 * ms of this process (process.cpuUsage: user + system, GC threads included), which a loaded
 * machine disturbs far less than wall time.
 *
 *   npx bun bench/profile-rebuild.ts                  # ROUTES=10000 ROUNDS=20 CHANGE=route POLICIES=0
 *   npx bun --cpu-prof-md --cpu-prof-dir=/tmp/prof bench/profile-rebuild.ts
 */
import { ResourceStore } from '../src/store/store.ts'
import { StoreIngest } from '../src/store/ingest.ts'
import { ManifestMemo, parseManifests } from '../src/sources/manifests.ts'
import { translate, Translator } from '../src/translate/index.ts'
import { validateSnapshot } from '../src/ir/validate.ts'
import { compile } from '../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../src/dataplane/upstream/registry.ts'
import { percentile } from './lib.ts'
import { scaleBase, scaleRoute } from './scale-routes.ts'

const ROUTES = Number(process.env.ROUTES ?? 10000)
const ROUNDS = Number(process.env.ROUNDS ?? 20)
const CHANGE = process.env.CHANGE ?? 'route'
const POLICIES = process.env.POLICIES === '1'
const route = (name: string, prefix: string, numRetries?: number) => scaleRoute(name, prefix, POLICIES, numRetries)

const store = new ResourceStore()
const ingest = new StoreIngest(store)
const memos = new Map<string, ManifestMemo>()
/** What FileSource does with a changed file: parse with the file's memo, replace its objects. */
function load(origin: string, text: string): void {
  let memo = memos.get(origin)
  if (!memo) memos.set(origin, (memo = new ManifestMemo()))
  const { objects, problems, change } = parseManifests(text, origin, memo)
  if (problems.length) throw new Error(JSON.stringify(problems))
  ingest.replaceOrigin(origin, objects, problems, change)
}
const routesText = (edited?: number, retries?: number) =>
  Array.from({ length: ROUTES }, (_, i) => (i !== edited ? route(`r${i}`, `/r${i}`) : retries !== undefined ? route(`r${i}`, `/r${i}`, retries) : route(`r${i}`, `/edited-${edited}`))).join('---\n')
const base = (k?: number) => scaleBase(8080, 9090, POLICIES, k === undefined ? '60s' : `${61 + k}s`)
const takeOver = (k: number) => `apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: extra-${k}, creationTimestamp: "2020-01-01T00:00:00Z" }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: r${k * 7} }]
  authorization: { defaultAction: Deny, rules: [{ name: loopback, action: Allow, principal: { clientCIDRs: [127.0.0.0/8] } }] }
`
if (!POLICIES && ['policy', 'newpolicy', 'gatewaypolicy'].includes(CHANGE)) throw new Error(`CHANGE=${CHANGE} needs POLICIES=1`)
load('base.yaml', base())
load('routes.yaml', routesText())
const registry = new EndpointRegistry()
const opts = { controllerName: 'portico.dev/gateway-controller' }
const translator = new Translator(opts)
const translateView = process.env.COLD === '1' ? (view: ReturnType<typeof store.view>) => translate(view, opts) : (view: ReturnType<typeof store.view>) => translator.translate(view)
compile(translateView(store.view()).ir, registry) // start-up build, untimed

const PHASES = ['parse+store', 'view', 'translate', 'validate', 'compile', 'total', 'status (after)'] as const
const wall: Record<string, number[]> = Object.fromEntries(PHASES.map((p) => [p, []]))
const cpu: Record<string, number[]> = Object.fromEntries(PHASES.map((p) => [p, []]))
let mark = { wall: 0, cpu: 0 }
const now = () => {
  const u = process.cpuUsage()
  return { wall: performance.now(), cpu: (u.user + u.system) / 1000 }
}
const lap = (phase: string) => {
  const t = now()
  wall[phase]!.push(t.wall - mark.wall)
  cpu[phase]!.push(t.cpu - mark.cpu)
  mark = t
}
for (let k = 0; k < ROUNDS; k++) {
  // the text is made outside the timing, like a file written by someone else
  const [origin, text] =
    CHANGE === 'edit'
      ? ['routes.yaml', routesText(k)]
      : CHANGE === 'endpoints'
        ? ['base.yaml', base().replace('[127.0.0.1]', `[127.0.0.${2 + k}]`)]
        : CHANGE === 'service'
          ? ['base.yaml', base().replace('port: 80,', `port: 80, appProtocol: x${k},`)]
          : CHANGE === 'policy'
            ? ['routes.yaml', routesText(k * 7, 3 + (k % 2))]
            : CHANGE === 'newpolicy'
              ? [`policy-${k}.yaml`, takeOver(k)]
              : CHANGE === 'gatewaypolicy'
                ? ['base.yaml', base(k)]
                : [`new-${k}.yaml`, route(`new-${k}`, `/new-${k}`)]
  Bun.gc(true) // garbage from making the text is not the rebuild's
  const start = (mark = now())
  load(origin, text)
  lap('parse+store')
  const view = store.view()
  lap('view')
  const result = translateView(view)
  lap('translate')
  const problems = validateSnapshot(result.ir)
  lap('validate')
  compile(result.ir, registry)
  lap('compile')
  wall.total!.push(mark.wall - start.wall)
  cpu.total!.push(mark.cpu - start.cpu)
  // the controller reads the status map once the plan is live (merged on first read)
  void result.status
  lap('status (after)')
  if (problems.length) throw new Error(problems.join('\n'))
  if (result.ir.http[0]?.listeners[0] === undefined) throw new Error('nothing attached: check the GatewayClass')
}
console.log(`rebuild at ${ROUTES} routes${POLICIES ? ' (2 policies each, 1 on the Gateway)' : ''} after one change (${CHANGE}), ${ROUNDS} rounds${process.env.COLD === '1' ? ', cold translate' : ''}`)
console.log('phase            wall p50   wall p99    CPU p50    CPU p99  (ms)')
for (const p of PHASES) console.log(`${p.padEnd(15)} ${[percentile(wall[p]!, 50), percentile(wall[p]!, 99), percentile(cpu[p]!, 50), percentile(cpu[p]!, 99)].map((x) => x.toFixed(1).padStart(10)).join(' ')}`)
