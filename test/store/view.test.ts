/**
 * ResourceStore.view() patches its per-kind lists instead of sorting everything each time; it
 * must still equal viewOf(all()), hand out the same array for a kind that did not change, and
 * never alter a view it already handed out.
 */
import { expect, test } from 'bun:test'
import { keyOf, type K8sObject } from '../../src/store/kinds.ts'
import { ResourceStore, viewOf, type ResourceView } from '../../src/store/store.ts'

const KINDS = ['HTTPRoute', 'Service', 'Gateway', 'TCPRoute'] as const
const GROUP: Record<string, string> = { HTTPRoute: 'gateway.networking.k8s.io/v1', Gateway: 'gateway.networking.k8s.io/v1', TCPRoute: 'gateway.networking.k8s.io/v1alpha2', Service: 'v1' }

function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

const KIND_OF: Record<string, string> = { httpRoutes: 'HTTPRoute', services: 'Service', gateways: 'Gateway', tcpRoutes: 'TCPRoute' }

const lists = (v: ResourceView) => Object.entries(v).filter(([k]) => k !== 'revision') as [string, readonly K8sObject[]][]

function expectSame(a: ResourceView, b: ResourceView): void {
  expect(a.revision).toBe(b.revision)
  const bl = new Map(lists(b))
  for (const [field, list] of lists(a)) {
    const other = bl.get(field)!
    expect(list.length).toBe(other.length)
    list.forEach((o, i) => expect(o === other[i]).toBe(true))
  }
}

test('view() ≡ viewOf(all()) over random changes; unchanged kinds keep their array; old views stay as they were', () => {
  const rand = rng(7)
  const store = new ResourceStore()
  const object = (): K8sObject => {
    const kind = KINDS[Math.floor(rand() * KINDS.length)]!
    // a small name space, so upserts often replace and deletes often hit
    return { apiVersion: GROUP[kind]!, kind, metadata: { name: `n${Math.floor(rand() * 150)}`, namespace: rand() < 0.5 ? 'default' : 'b' }, spec: { v: rand() } }
  }
  let previous = store.view()
  let frozen = JSON.stringify(previous)
  for (let step = 0; step < 300; step++) {
    const r = rand()
    const changed = new Set<string>()
    const note = (o: K8sObject) => changed.add(o.kind)
    if (r < 0.5) {
      for (let n = 1 + Math.floor(rand() * 3); n > 0; n--) {
        const o = object()
        note(o)
        store.upsert(o)
      }
    } else if (r < 0.75) {
      const all = store.all()
      for (let n = 1 + Math.floor(rand() * 3); n > 0 && all.length; n--) {
        const o = all[Math.floor(rand() * all.length)]!
        note(o)
        store.delete(keyOf(o))
      }
    } else if (r < 0.9) {
      // more changes at once than the patch path takes
      const many = Array.from({ length: 80 }, object)
      many.forEach(note)
      store.replaceAll([], many)
    } else {
      const gone = store.all().filter(() => rand() < 0.5)
      gone.forEach(note)
      store.replaceAll(gone.map(keyOf), [])
    }
    const view = store.view()
    expectSame(view, viewOf(store.all(), store.revision))
    const before = new Map(lists(previous))
    for (const [field, list] of lists(view)) if (!changed.has(KIND_OF[field] ?? '')) expect(list).toBe(before.get(field)!)
    // the view handed out one step ago is unchanged
    expect(JSON.stringify(previous)).toBe(frozen)
    previous = view
    frozen = JSON.stringify(view)
  }
})

test('a view without changes in between is the same lists', () => {
  const store = new ResourceStore()
  store.upsert({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'default' }, spec: {} })
  const a = store.view()
  const b = store.view()
  for (const [field, list] of lists(a)) expect(list).toBe(lists(b).find(([f]) => f === field)![1])
})
