#!/usr/bin/env bun
/**
 * What each route costs in memory, stage by stage, in process, on demand (never in CI): the
 * JS heap (after a full GC) grown by the file source's text and parse memo, the store, the
 * translation (IR, status, translator caches), the wire copy a worker decodes, and the
 * worker's compiled plan, at ROUTES HTTPRoutes (one prefix each, as bench/scale.ts). TYPES=1
 * also lists the object types that grew the most.
 *
 *   npx bun bench/profile-memory.ts          # ROUTES=10000 POLICIES=0
 */
import { heapStats } from 'bun:jsc'
import { ResourceStore } from '../src/store/store.ts'
import { ManifestMemo, parseManifests } from '../src/sources/manifests.ts'
import { Translator } from '../src/translate/index.ts'
import { validateSnapshot } from '../src/ir/validate.ts'
import { compile } from '../src/dataplane/snapshot.ts'
import { SnapshotDecoder, SnapshotEncoder } from '../src/dataplane/snapshot-wire.ts'
import { EndpointRegistry } from '../src/dataplane/upstream/registry.ts'
import { gatewayManifests } from './lib.ts'
import { scaleRoute } from './scale-routes.ts'

const ROUTES = Number(process.env.ROUTES ?? 10000)
const POLICIES = process.env.POLICIES === '1'

const route = (name: string, prefix: string) => scaleRoute(name, prefix, POLICIES)

const keep: unknown[] = []
let last = 0
let lastTypes: Record<string, number> = {}
function stage(name: string) {
  Bun.gc(true)
  Bun.gc(true)
  const s = heapStats()
  const size = s.heapSize
  if (last) console.log(`${name.padEnd(28)} +${((size - last) / 1024 / 1024).toFixed(1).padStart(6)} MiB  ${((size - last) / ROUTES).toFixed(0).padStart(6)} B/route`)
  if (process.env.TYPES === '1' && last) {
    const grown = Object.entries(s.objectTypeCounts).map(([k, v]) => [k, v - (lastTypes[k] ?? 0)] as const).filter(([, d]) => d > ROUTES / 2).sort((a, b) => b[1] - a[1]).slice(0, 12)
    console.log('   ', grown.map(([k, d]) => `${k} ${(d / ROUTES).toFixed(1)}`).join(', '))
  }
  last = size
  lastTypes = s.objectTypeCounts
}

stage('start')
const text = [gatewayManifests(8080, 9090), ...Array.from({ length: ROUTES }, (_, i) => route(`r${i}`, `/r${i}`))].join('---\n')
keep.push(text)
stage('file text')
const memo = new ManifestMemo()
const parsed = parseManifests(text, 'bench', memo)
stage('parse + memo')
const store = new ResourceStore()
for (const o of parsed.objects) store.upsert(o)
stage('store')
const translator = new Translator({ controllerName: 'portico.dev/gateway-controller' })
const result = translator.translate(store.view())
keep.push(result)
stage('translate (IR + status)')
if (validateSnapshot(result.ir).length) throw new Error('invalid')
const wire = new SnapshotEncoder().encode(result.ir)
console.log(`wire message ${(wire.length / 1024 / 1024).toFixed(1)} MiB, ${(wire.length / ROUTES).toFixed(0)} B/route`)
const decoded = new SnapshotDecoder().decode(wire)
keep.push(decoded)
stage('worker: decoded IR')
const plan = compile(decoded, new EndpointRegistry())
keep.push(plan)
stage('worker: compiled plan')
