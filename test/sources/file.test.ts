import { afterEach, expect, test } from 'bun:test'
import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileSource } from '../../src/sources/file.ts'
import { StoreIngest } from '../../src/store/ingest.ts'
import { ResourceStore } from '../../src/store/store.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'

const ns = (name: string, label = 'x') => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name}, labels: { l: ${label} } }\n`
let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup) await c()
  cleanup = []
})

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'portico-file-'))
  const store = new ResourceStore()
  const ingest = new StoreIngest(store)
  const source = new FileSource({ dir, logger: silentLogger, debounceMs: 10, pollMs: 200 })
  cleanup.push(async () => {
    await source.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, store, ingest, source }
}

async function eventually(check: () => boolean, ms = 3000) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (check()) return
    await Bun.sleep(20)
  }
  throw new Error('condition not reached')
}

const names = (s: ResourceStore) => s.all().map((o) => `${o.metadata.name}:${o.metadata.labels?.l}`).sort()

test('initial load reads yaml, yml and json recursively and skips dot files', async () => {
  const { dir, store, ingest, source } = await setup()
  writeFileSync(join(dir, 'a.yaml'), ns('a'))
  writeFileSync(join(dir, 'b.yml'), ns('b'))
  mkdirSync(join(dir, 'sub'))
  writeFileSync(join(dir, 'sub', 'c.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'c' } }))
  writeFileSync(join(dir, '.tmp-123'), ns('hidden'))
  writeFileSync(join(dir, 'notes.txt'), ns('txt'))
  await source.start(ingest)
  expect(names(store)).toEqual(['a:x', 'b:x', 'c:undefined'])
})

test('atomic rename, change and delete are picked up; bursts coalesce', async () => {
  const { dir, store, ingest, source } = await setup()
  writeFileSync(join(dir, 'm.yaml'), ns('a'))
  await source.start(ingest)
  const rev0 = store.revision
  writeFileSync(join(dir, '.tmp'), ns('a', 'y') + '---\n' + ns('b'))
  renameSync(join(dir, '.tmp'), join(dir, 'm.yaml'))
  await eventually(() => names(store).join() === 'a:y,b:x')
  expect(store.revision).toBe(rev0 + 1) // one revision for the whole file
  rmSync(join(dir, 'm.yaml'))
  await eventually(() => store.all().length === 0)
})

test('a broken file keeps its last good objects and reports the problem with a line', async () => {
  const { dir, store, ingest, source } = await setup()
  writeFileSync(join(dir, 'm.yaml'), ns('a') + '---\n' + ns('b'))
  writeFileSync(join(dir, 'other.yaml'), ns('c'))
  await source.start(ingest)
  writeFileSync(join(dir, 'm.yaml'), ns('a', 'changed') + '---\nkind: Namespace\napiVersion: v1\nmetadata: {name: [\n')
  writeFileSync(join(dir, 'other.yaml'), ns('c', 'z'))
  await eventually(() => names(store).includes('c:z'))
  await eventually(() => ingest.problems().length === 1)
  // the valid document in the broken file is applied; the unparseable one keeps b
  expect(names(store)).toEqual(['a:changed', 'b:x', 'c:z'])
  expect(ingest.problems()[0]!.line).toBe(5)
  writeFileSync(join(dir, 'm.yaml'), ns('a'))
  await eventually(() => ingest.problems().length === 0 && names(store).join() === 'a:x,c:z')
})

test('an invalid object keeps its own last good version only', async () => {
  const { dir, store, ingest, source } = await setup()
  const gw = (port: number) =>
    `apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: gw }\nspec: { gatewayClassName: x, listeners: [{ name: l, port: ${port}, protocol: HTTP }] }\n`
  writeFileSync(join(dir, 'm.yaml'), gw(80) + '---\n' + ns('a'))
  await source.start(ingest)
  writeFileSync(join(dir, 'm.yaml'), gw(0))
  await eventually(() => ingest.problems().length === 1)
  expect(store.all().map((o) => o.kind)).toEqual(['Gateway'])
  expect(store.all()[0]!.spec.listeners[0].port).toBe(80)
  expect(ingest.problems()[0]!.objectKey).toBe('Gateway/default/gw')
})

test('a rewrite keeping size and mtime is still seen; a settled file is not re-read but a change to it is', async () => {
  const { dir, store, ingest, source } = await setup()
  const file = join(dir, 'm.yaml')
  writeFileSync(file, ns('a', 'p'))
  const old = new Date(Date.now() - 60_000)
  utimesSync(file, old, old)
  await source.start(ingest)
  expect(names(store)).toEqual(['a:p'])
  // same size, same mtime, different bytes: only ctime (and the "racily clean" rule) tell
  writeFileSync(file, ns('a', 'q'))
  utimesSync(file, old, old)
  await eventually(() => names(store).join() === 'a:q')
  // the file as the source last read it keeps being served across rescans, and the next edit counts
  await Bun.sleep(450)
  expect(names(store)).toEqual(['a:q'])
  writeFileSync(file, ns('a', 'r'))
  await eventually(() => names(store).join() === 'a:r')
})
