/**
 * Connects sources to the store. Tracks which origin (file, watched kind) owns which objects,
 * so a changed file replaces exactly its own objects in one revision, and keeps the last good
 * version of an object whose new version failed to load. Also the place that remembers the
 * current load problems for the admin view and status.
 */
import { keyOf, type K8sObject } from './kinds.ts'
import type { ResourceStore } from './store.ts'
import type { LoadProblem, SourceSink } from '../sources/source.ts'
import type { ManifestChange } from '../sources/manifests.ts'

export class StoreIngest implements SourceSink {
  #owned = new Map<string, Set<string>>()
  /** Per origin, the objects of its last load and their keys, when that load had no problems. */
  #last = new Map<string, Map<K8sObject, string>>()
  /** Per origin with a `#last`, the very array that load came as (what a ManifestChange is relative to). */
  #lastArray = new Map<string, readonly K8sObject[]>()
  #problems = new Map<string, readonly LoadProblem[]>()
  #onProblems: (() => void) | undefined

  constructor(private readonly store: ResourceStore) {}

  /** Called whenever the set of load problems changes (so status can be republished). */
  onProblemsChanged(fn: () => void): void {
    this.#onProblems = fn
  }

  replaceOrigin(origin: string, objects: readonly K8sObject[], problems: readonly LoadProblem[], change?: ManifestChange): void {
    const last = this.#last.get(origin)
    if (last && problems.length === 0 && change && change.after === this.#lastArray.get(origin) && this.#applyChange(origin, last, change)) {
      this.#lastArray.set(origin, objects)
      this.#setProblems(origin, problems)
      return
    }
    const next = last && problems.length === 0 ? this.#replaceDifference(origin, last, objects) : undefined
    if (next) {
      this.#last.set(origin, next)
      this.#lastArray.set(origin, objects)
      this.#setProblems(origin, problems)
      return
    }
    this.#replaceWhole(origin, objects, problems)
    const keyed = new Map(objects.map((o) => [o, keyOf(o)]))
    // only a clean load with one object per key is a base for the next difference
    if (problems.length === 0 && new Set(keyed.values()).size === objects.length) {
      this.#last.set(origin, keyed)
      this.#lastArray.set(origin, objects)
    } else {
      this.#last.delete(origin)
      this.#lastArray.delete(origin)
    }
    this.#setProblems(origin, problems)
  }

  #replaceWhole(origin: string, objects: readonly K8sObject[], problems: readonly LoadProblem[]): void {
    const previous = this.#owned.get(origin) ?? new Set<string>()
    const kept: K8sObject[] = [...objects]
    const keys = new Set(objects.map(keyOf))
    // A document that failed to parse as a whole (no key) keeps everything the origin had;
    // a single invalid object keeps its own last good version.
    const wholeFileBroken = problems.some((p) => p.objectKey === undefined)
    for (const key of previous) {
      if (keys.has(key)) continue
      const keep = wholeFileBroken || problems.some((p) => p.objectKey === key)
      const old = keep ? this.store.get(key) : undefined
      if (old) {
        kept.push(old)
        keys.add(key)
      }
    }
    this.store.replaceAll(previous, kept)
    this.#owned.set(origin, keys)
  }

  /**
   * The same change as #replaceWhole for an origin whose previous load had no problems (so it
   * owns exactly the keys of `last`), worked out from object identity: the file source hands
   * back the very same objects for unchanged documents, so editing one route in a file of
   * 10,000 touches one key instead of keying, comparing and re-setting all of them. Undefined
   * (nothing done) when two objects of the load share a key: which one wins depends on their
   * order, which only the whole replacement follows.
   */
  #replaceDifference(origin: string, last: ReadonlyMap<K8sObject, string>, objects: readonly K8sObject[]): Map<K8sObject, string> | undefined {
    const next = new Map<K8sObject, string>()
    const keys = new Set<string>()
    const sets: [string, K8sObject][] = []
    for (const o of objects) {
      const key = last.get(o) ?? keyOf(o)
      if (keys.has(key)) return undefined
      keys.add(key)
      next.set(o, key)
      // also an unchanged object that another origin replaced since: this load sets it back
      if (this.store.get(key) !== o) sets.push([key, o])
    }
    const owned = this.#owned.get(origin) ?? new Set<string>()
    const deletes: string[] = []
    for (const [o, key] of last) if (!next.has(o) && !keys.has(key)) deletes.push(key)
    for (const key of deletes) owned.delete(key)
    for (const [key] of sets) owned.add(key)
    this.#owned.set(origin, owned)
    this.store.applyChanges(deletes, sets)
    return next
  }

  /**
   * #replaceDifference for a load given as a change to the previous one (the same objects but
   * `removed`, plus `added`): the same store change, in work proportional to the change. The
   * one walk over all of the origin's objects left checks that each kept one is still the
   * store's (another origin may have replaced it since: the whole path would set it back);
   * false (nothing done) then, or when an added key is one the load keeps or adds twice.
   */
  #applyChange(origin: string, last: Map<K8sObject, string>, change: ManifestChange): boolean {
    const removed = new Set(change.removed)
    for (const o of removed) if (!last.has(o)) return false
    for (const [o, key] of last) if (!removed.has(o) && this.store.get(key) !== o) return false
    const removedKeys = new Set<string>()
    for (const o of removed) removedKeys.add(last.get(o)!)
    const owned = this.#owned.get(origin) ?? new Set<string>()
    const sets: [string, K8sObject][] = []
    const addedKeys = new Set<string>()
    for (const o of change.added) {
      const key = keyOf(o)
      if (last.has(o) || addedKeys.has(key) || (owned.has(key) && !removedKeys.has(key))) return false
      addedKeys.add(key)
      sets.push([key, o])
    }
    const deletes = [...removedKeys].filter((key) => !addedKeys.has(key))
    for (const o of removed) last.delete(o)
    for (const [key, o] of sets) last.set(o, key)
    for (const key of deletes) owned.delete(key)
    for (const key of addedKeys) owned.add(key)
    this.#owned.set(origin, owned)
    this.store.applyChanges(deletes, sets)
    return true
  }

  dropOrigin(origin: string): void {
    const previous = this.#owned.get(origin)
    if (previous) this.store.replaceAll(previous, [])
    this.#owned.delete(origin)
    this.#last.delete(origin)
    this.#lastArray.delete(origin)
    this.#setProblems(origin, [])
  }

  problems(): LoadProblem[] {
    return [...this.#problems.values()].flat()
  }

  #setProblems(origin: string, problems: readonly LoadProblem[]): void {
    const before = JSON.stringify(this.#problems.get(origin) ?? [])
    if (problems.length) this.#problems.set(origin, problems)
    else this.#problems.delete(origin)
    if (before !== JSON.stringify(problems)) this.#onProblems?.()
  }
}
