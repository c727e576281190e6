/**
 * StoreIngest applies a load as a difference (by object identity) when the origin's previous
 * load had no problems. Over random sequences of loads from two origins (objects kept, edited,
 * removed, added, keys shared across origins, origins dropped), the store must hold exactly what
 * the whole replacement produces: the reference ingest takes every load with a problem naming an
 * object that never exists, which sends it down the whole path without changing what it keeps.
 */
import { describe, expect, test } from 'bun:test'
import { StoreIngest } from '../../src/store/ingest.ts'
import { ResourceStore } from '../../src/store/store.ts'
import { keyOf, type K8sObject } from '../../src/store/kinds.ts'
import { ManifestMemo, parseManifests } from '../../src/sources/manifests.ts'

function service(name: string, port: number): K8sObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port }] } } as K8sObject
}

function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

const contents = (store: ResourceStore) => store.all().map((o) => [keyOf(o), o] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1))

describe('StoreIngest by difference', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`holds what a whole replacement holds (seed ${seed})`, () => {
      const random = prng(seed)
      const fast = new ResourceStore()
      const reference = new ResourceStore()
      const fastIngest = new StoreIngest(fast)
      const referenceIngest = new StoreIngest(reference)
      const loads = new Map<string, K8sObject[]>([
        ['a.yaml', []],
        ['b.yaml', []],
      ])
      for (let step = 0; step < 80; step++) {
        const origin = random() < 0.5 ? 'a.yaml' : 'b.yaml'
        let objects = [...loads.get(origin)!]
        const what = random()
        if (what < 0.3) objects.push(service(`s${Math.floor(random() * 12)}`, step)) // new, maybe a key the other origin has
        else if (what < 0.5 && objects.length) objects[Math.floor(random() * objects.length)] = service(objects[Math.floor(random() * objects.length)]!.metadata.name, 1000 + step)
        else if (what < 0.65 && objects.length) objects.splice(Math.floor(random() * objects.length), 1)
        else if (what < 0.7) objects = []
        // mostly one object per key, as parseManifests guarantees; sometimes two (another source might)
        if (random() < 0.85) objects = [...new Map(objects.map((o) => [keyOf(o), o])).values()]
        loads.set(origin, objects)
        if (random() < 0.08) {
          fastIngest.dropOrigin(origin)
          referenceIngest.dropOrigin(origin)
          loads.set(origin, [])
        } else {
          fastIngest.replaceOrigin(origin, objects, [])
          referenceIngest.replaceOrigin(origin, objects, [{ origin, message: 'reference', objectKey: 'Service/none/never' }])
        }
        expect(contents(fast)).toEqual(contents(reference))
        for (const [key, o] of contents(fast)) expect(o).toBe(reference.get(key)!)
      }
    })
  }

  test('one object edited among many: one revision, the others untouched', () => {
    const store = new ResourceStore()
    const ingest = new StoreIngest(store)
    const objects = Array.from({ length: 50 }, (_, i) => service(`s${i}`, 80))
    ingest.replaceOrigin('f', objects, [])
    const before = store.revision
    const edited = [...objects]
    edited[7] = service('s7', 81)
    ingest.replaceOrigin('f', edited, [])
    expect(store.revision).toBe(before + 1)
    expect(store.get('Service/default/s7')).toBe(edited[7]!)
    expect(store.get('Service/default/s8')).toBe(objects[8]!)
    ingest.replaceOrigin('f', edited, [])
    expect(store.revision).toBe(before + 1)
  })

  for (const seed of [11, 12, 13, 14]) {
    test(`files loaded as changes (parseManifests with a memo) hold what a whole replacement holds (seed ${seed})`, () => {
      const random = prng(seed)
      const stores = [new ResourceStore(), new ResourceStore()] as const
      const fast = new StoreIngest(stores[0])
      const reference = new StoreIngest(stores[1])
      const doc = (name: string, port: number) => `apiVersion: v1\nkind: Service\nmetadata: { name: ${name} }\nspec: { ports: [{ port: ${port} }] }\n`
      const files = new Map<string, string[]>([
        ['a.yaml', Array.from({ length: 10 }, (_, i) => doc(`a${i}`, 80))],
        ['b.yaml', Array.from({ length: 10 }, (_, i) => doc(`b${i}`, 80))],
      ])
      const memos = new Map([...files.keys()].map((f) => [f, new ManifestMemo()]))
      let applied = 0
      for (let step = 0; step < 100; step++) {
        const origin = random() < 0.5 ? 'a.yaml' : 'b.yaml'
        const docs = files.get(origin)!
        const what = random()
        const at = Math.floor(random() * docs.length)
        // names from a shared pool sometimes, so the two files fight over a key
        const name = random() < 0.1 ? `shared${Math.floor(random() * 3)}` : random() < 0.1 ? `${origin[0]}${Math.floor(random() * 10)}` : `${origin[0]}n${step}`
        if (what < 0.3) docs.splice(at, 0, doc(name, step))
        else if (what < 0.6 && docs.length) docs[at] = docs[at]!.replace(/port: \d+/, `port: ${1000 + step}`)
        else if (what < 0.8 && docs.length) docs.splice(at, 1)
        else if (what < 0.83) docs.splice(at, 0, 'kind: [broken\n')
        else if (what < 0.9) {
          // broken documents and repeated names fixed
          const seen = new Set<string>()
          const nameOf = (d: string) => /name: (\w+)/.exec(d)?.[1]
          files.set(origin, docs.filter((d) => !d.includes('broken') && !seen.has(nameOf(d)!) && (seen.add(nameOf(d)!), true)))
        }
        else if (docs.length) docs[at] = docs[at]!.replace(/name: \w+/, `name: ${name}`)
        const parsed = parseManifests(files.get(origin)!.join('---\n'), origin, memos.get(origin)!)
        if (parsed.change) applied++
        fast.replaceOrigin(origin, parsed.objects, parsed.problems, parsed.change)
        reference.replaceOrigin(origin, parsed.objects, [...parsed.problems, { origin, message: 'reference', objectKey: 'Service/none/never' }])
        expect(contents(stores[0])).toEqual(contents(stores[1]))
        for (const [key, o] of contents(stores[0])) expect(o).toBe(stores[1].get(key)!)
      }
      expect(applied).toBeGreaterThan(10) // loads did take the change path
    })
  }
})
