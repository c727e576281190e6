/**
 * A sorted array that follows a changing set without re-sorting it: callers touch() the items
 * whose membership may have changed, and items() reconciles just those (binary search, splice)
 * before handing out the array. Many changes at once (a first build) sort from scratch instead.
 *
 * Handed-out arrays are never written again (a change copies), so a snapshot that holds one
 * keeps it as it was. `compare` must be a total order on the items that are members at the same
 * time, except that an item may compare equal to one it replaces (e.g. a changed route's rule
 * and its predecessor): equal neighbours are told apart by identity.
 */

/** Above this many touched items, sorting everything is cheaper than splicing one by one. */
const SPLICE_MAX = 64

export class SortedSet<T> {
  #items: readonly T[] = []
  readonly #touched = new Set<T>()

  constructor(private readonly compare: (a: T, b: T) => number) {}

  touch(item: T): void {
    this.#touched.add(item)
  }

  /**
   * The members in order. `has` decides membership of touched items; `all` lists every member
   * (used for a full sort).
   */
  items(has: (item: T) => boolean, all: () => Iterable<T>): readonly T[] {
    const touched = this.#touched
    if (touched.size === 0) return this.#items
    if (touched.size > SPLICE_MAX) this.#items = [...all()].sort(this.compare)
    else {
      const items = this.#items.slice()
      for (const item of touched) {
        const at = lowerBound(items, item, this.compare)
        const found = indexIn(items, at, item, this.compare)
        const member = has(item)
        if (member && found < 0) items.splice(at, 0, item)
        else if (!member && found >= 0) items.splice(found, 1)
      }
      this.#items = items
    }
    touched.clear()
    return this.#items
  }
}

/** First index whose item does not sort before `item`. */
function lowerBound<T>(items: readonly T[], item: T, compare: (a: T, b: T) => number): number {
  let lo = 0
  let hi = items.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compare(items[mid]!, item) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Index of `item` itself within the run of items equal to it that starts at `from`, or -1. */
function indexIn<T>(items: readonly T[], from: number, item: T, compare: (a: T, b: T) => number): number {
  for (let i = from; i < items.length && compare(items[i]!, item) === 0; i++) if (items[i] === item) return i
  return -1
}
