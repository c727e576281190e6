/**
 * The typed resource store: one map per kind keyed "Kind/ns/name". Sources write into it;
 * the pipeline reads a frozen `view()` and never the live maps, so translation sees one
 * consistent revision even while a source keeps writing.
 */
import { keyOf, RESOURCE_KINDS, type K8sObject, type ViewField } from './kinds.ts'

/** A consistent, read-only bag of every resource at one revision: the input to translation. */
export type ResourceView = { readonly revision: number } & { readonly [F in ViewField]: readonly K8sObject[] }

const FIELD_BY_KIND: Record<string, ViewField> = Object.fromEntries(RESOURCE_KINDS.map((k) => [k.kind, k.view]))

const FIELDS: readonly ViewField[] = RESOURCE_KINDS.map((k) => k.view)

/** Builds a view from a plain list (tests and golden files use this). */
export function viewOf(objects: readonly K8sObject[], revision = 1): ResourceView {
  const bag: Record<string, { key: string; o: K8sObject }[]> = {}
  for (const f of FIELDS) bag[f] = []
  for (const o of objects) {
    const field = FIELD_BY_KIND[o.kind]
    if (field) bag[field]!.push({ key: keyOf(o), o })
  }
  // deterministic order regardless of load order: translation output must not depend on it.
  // Keys are computed once per object, not twice per comparison.
  const lists: Record<string, readonly K8sObject[]> = {}
  for (const f of FIELDS) lists[f] = bag[f]!.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((x) => x.o)
  return Object.freeze({ revision, ...lists }) as unknown as ResourceView
}

/** Up to this many pending changes, a kind's sorted list is patched (binary search, splice) rather than re-sorted. */
const PATCH_MAX = 64

/**
 * One kind's objects, with the sorted list the last view() handed out. Views are immutable, so
 * a change copies the list; kinds that did not change keep handing out the same array (cheap
 * views, and translation can tell an unchanged kind by identity).
 */
class KindList {
  readonly #objects = new Map<string, K8sObject>()
  /** Keys changed since the last view (set or deleted; `objects` says which). */
  #pending = new Set<string>()
  #keys: string[] = []
  // Handed-out lists are never written again (readonly by type; Object.freeze on a 5,000-item
  // array costs ~1 ms in JSC).
  #list: readonly K8sObject[] = []

  set(key: string, o: K8sObject): void {
    this.#objects.set(key, o)
    this.#pending.add(key)
  }

  delete(key: string): void {
    if (this.#objects.delete(key)) this.#pending.add(key)
  }

  list(): readonly K8sObject[] {
    if (this.#pending.size === 0) return this.#list
    if (this.#pending.size > PATCH_MAX) {
      this.#keys = [...this.#objects.keys()].sort()
      this.#list = this.#keys.map((k) => this.#objects.get(k)!)
    } else {
      // a few changes: patch copies of the sorted keys and list (binary search, splice)
      const keys = this.#keys.slice()
      const list = this.#list.slice()
      for (const key of this.#pending) {
        const i = lowerBound(keys, key)
        const present = i < keys.length && keys[i] === key
        const o = this.#objects.get(key)
        if (o === undefined) {
          if (present) {
            keys.splice(i, 1)
            list.splice(i, 1)
          }
        } else if (present) list[i] = o
        else {
          keys.splice(i, 0, key)
          list.splice(i, 0, o)
        }
      }
      this.#keys = keys
      this.#list = list
    }
    this.#pending.clear()
    return this.#list
  }
}

/** First index whose key is not below `key` (keys sorted by code unit, like Array#sort). */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (keys[mid]! < key) lo = mid + 1
    else hi = mid
  }
  return lo
}

export type StoreListener = (revision: number) => void

export class ResourceStore {
  #objects = new Map<string, K8sObject>()
  #kinds = new Map<string, KindList>(FIELDS.map((f) => [f, new KindList()]))
  #revision = 0
  #listeners = new Set<StoreListener>()

  get revision(): number {
    return this.#revision
  }

  /** Inserts or replaces; a no-op (no revision bump) when the object is unchanged. */
  upsert(o: K8sObject): void {
    const key = keyOf(o)
    const prev = this.#objects.get(key)
    if (prev && JSON.stringify(prev) === JSON.stringify(o)) return
    this.#set(key, o)
    this.#bump()
  }

  delete(key: string): void {
    if (this.#delete(key)) this.#bump()
  }

  /** Replaces everything owned by one origin (a file, a watched kind) in a single revision. */
  replaceAll(keys: Iterable<string>, next: readonly K8sObject[]): void {
    let changed = false
    const nextKeys = new Set(next.map(keyOf))
    for (const k of keys) if (!nextKeys.has(k) && this.#delete(k)) changed = true
    for (const o of next) {
      const key = keyOf(o)
      const prev = this.#objects.get(key)
      // The same object (a file's unchanged documents come back as such) needs no comparing.
      if (prev === o || (prev && JSON.stringify(prev) === JSON.stringify(o))) continue
      this.#set(key, o)
      changed = true
    }
    if (changed) this.#bump()
  }

  /** Deletes `deletes`, then sets each [key, object] of `sets` (unless equal), in a single revision. */
  applyChanges(deletes: readonly string[], sets: readonly (readonly [string, K8sObject])[]): void {
    let changed = false
    for (const key of deletes) if (this.#delete(key)) changed = true
    for (const [key, o] of sets) {
      const prev = this.#objects.get(key)
      if (prev === o || (prev && JSON.stringify(prev) === JSON.stringify(o))) continue
      this.#set(key, o)
      changed = true
    }
    if (changed) this.#bump()
  }

  get(key: string): K8sObject | undefined {
    return this.#objects.get(key)
  }

  all(): K8sObject[] {
    return [...this.#objects.values()]
  }

  /**
   * The current revision as a view: the same content and order as viewOf(all()), but only kinds
   * that changed since the previous view are re-listed (a new route must not re-sort 5,000).
   */
  view(): ResourceView {
    const lists: Record<string, readonly K8sObject[]> = {}
    for (const [field, kind] of this.#kinds) lists[field] = kind.list()
    return Object.freeze({ revision: this.#revision, ...lists }) as unknown as ResourceView
  }

  onChange(fn: StoreListener): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  #set(key: string, o: K8sObject): void {
    this.#objects.set(key, o)
    const field = FIELD_BY_KIND[o.kind]
    if (field) this.#kinds.get(field)!.set(key, o)
  }

  #delete(key: string): boolean {
    const o = this.#objects.get(key)
    if (!o) return false
    this.#objects.delete(key)
    const field = FIELD_BY_KIND[o.kind]
    if (field) this.#kinds.get(field)!.delete(key)
    return true
  }

  #bump(): void {
    this.#revision++
    for (const fn of this.#listeners) fn(this.#revision)
  }
}
