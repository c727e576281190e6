/**
 * Connects sources to the store. Tracks which origin (file, watched kind) owns which objects,
 * so a changed file replaces exactly its own objects in one revision, and keeps the last good
 * version of an object whose new version failed to load. Also the place that remembers the
 * current load problems for the admin view and status.
 */
import { keyOf, type K8sObject } from './kinds.ts'
import type { ResourceStore } from './store.ts'
import type { LoadProblem, SourceSink } from '../sources/source.ts'

export class StoreIngest implements SourceSink {
  #owned = new Map<string, Set<string>>()
  #problems = new Map<string, readonly LoadProblem[]>()
  #onProblems: (() => void) | undefined

  constructor(private readonly store: ResourceStore) {}

  /** Called whenever the set of load problems changes (so status can be republished). */
  onProblemsChanged(fn: () => void): void {
    this.#onProblems = fn
  }

  replaceOrigin(origin: string, objects: readonly K8sObject[], problems: readonly LoadProblem[]): void {
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
    this.#setProblems(origin, problems)
  }

  dropOrigin(origin: string): void {
    const previous = this.#owned.get(origin)
    if (previous) this.store.replaceAll(previous, [])
    this.#owned.delete(origin)
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
