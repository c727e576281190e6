/**
 * The sum of the outcomes of every route in the last view, kept by difference: the Translator
 * adds the outcome of a new or changed route and removes that of a changed or deleted one,
 * instead of replaying 5,000 unchanged ones. Everything a route adds is a count or a member of a
 * set (status entry, rules in a virtual host, attachedRoutes, backend effects), so adding and
 * removing in any order gives the state a fresh translation of the view builds, and the sorted
 * outputs (status keys, virtual hosts, rules) are patched rather than re-sorted (SortedSet).
 *
 * Valid within one world (the same GatewayStates, whose attachedRoutes it keeps), and only when
 * no two routes share a key: the Translator checks `duplicateKeys` and falls back to translate().
 */
import type { HttpRule, VirtualHost } from '../ir/types.ts'
import { BackendUsage } from './backends.ts'
import type { ListenerState } from './gateway.ts'
import { compareHostSpecificity } from './hostnames.ts'
import { compareRules, type RankedRule } from './precedence.ts'
import type { RouteOutcome } from './route-outcome.ts'
import type { HttpContribution } from './snapshot.ts'
import { SortedSet } from './sorted-set.ts'
import { cmp } from './util.ts'

/** One hostname of one listener: the rules attached there, counted per contribution. */
interface HostBucket {
  /** Contributions naming this hostname; the virtual host exists while positive (even with no rules). */
  contributions: number
  readonly counts: Map<RankedRule, number>
  readonly order: SortedSet<RankedRule>
  /** The output for the current members; undefined after a change. */
  output: VirtualHost | undefined
}

interface ListenerHosts {
  readonly buckets: Map<string, HostBucket>
  readonly names: SortedSet<string>
  output: readonly VirtualHost[] | undefined
}

export class RouteTotals {
  /** Outcomes by route key: one each, unless a view holds two objects with one key. */
  readonly #byKey = new Map<string, RouteOutcome[]>()
  readonly #statusKeys = new SortedSet<string>(cmp)
  #duplicateKeys = 0
  readonly #listeners = new Map<ListenerState, ListenerHosts>()
  readonly usage = new BackendUsage()

  add(o: RouteOutcome): void {
    this.#change(o, 1)
  }

  remove(o: RouteOutcome): void {
    this.#change(o, -1)
  }

  /** Whether a route with this key has an outcome. */
  has(key: string): boolean {
    return this.#byKey.has(key)
  }

  /** Keys held by more than one route: the sums are still right, but the outputs are not defined. */
  get duplicateKeys(): number {
    return this.#duplicateKeys
  }

  /** Keys of the routes that have a status, sorted. */
  statusKeys(): readonly string[] {
    return this.#statusKeys.items(
      (k) => this.routeStatus(k) !== undefined,
      () => [...this.#byKey.keys()].filter((k) => this.routeStatus(k) !== undefined),
    )
  }

  routeStatus(key: string): Record<string, unknown> | undefined {
    return this.#byKey.get(key)?.[0]?.status
  }

  /** A listener's virtual hosts as the snapshot wants them (see snapshot.ts virtualHostsFrom). */
  virtualHosts(listener: ListenerState): readonly VirtualHost[] {
    const hosts = this.#listeners.get(listener)
    if (!hosts) return []
    if (hosts.output) return hosts.output
    const names = hosts.names.items(
      (h) => hosts.buckets.has(h),
      () => hosts.buckets.keys(),
    )
    hosts.output = names.map((hostname) => hostOutput(hostname, hosts.buckets.get(hostname)!))
    return hosts.output
  }

  #change(o: RouteOutcome, sign: 1 | -1): void {
    const same = this.#byKey.get(o.key)
    if (sign > 0) {
      if (!same) this.#byKey.set(o.key, [o])
      else if (same.push(o) === 2) this.#duplicateKeys++
    } else if (same) {
      const i = same.indexOf(o)
      if (i >= 0) same.splice(i, 1)
      if (same.length === 1 && i >= 0) this.#duplicateKeys--
      if (same.length === 0) this.#byKey.delete(o.key)
    }
    this.#statusKeys.touch(o.key)
    for (const c of o.http) this.#contribute(c, sign)
    for (const l of o.counted) l.attachedRoutes += sign
    this.usage.apply(o.effects, sign)
  }

  #contribute(c: HttpContribution, sign: 1 | -1): void {
    const listener = c.attachment.listener
    let hosts = this.#listeners.get(listener)
    if (!hosts) this.#listeners.set(listener, (hosts = { buckets: new Map(), names: new SortedSet<string>(compareHostSpecificity), output: undefined }))
    hosts.output = undefined
    for (const hostname of c.attachment.hostnames) {
      let bucket = hosts.buckets.get(hostname)
      if (!bucket) {
        hosts.buckets.set(hostname, (bucket = { contributions: 0, counts: new Map(), order: new SortedSet(compareRules), output: undefined }))
        hosts.names.touch(hostname)
      }
      bucket.output = undefined
      bucket.contributions += sign
      for (const r of c.rules) {
        const n = (bucket.counts.get(r) ?? 0) + sign
        if (n === 0) bucket.counts.delete(r)
        else bucket.counts.set(r, n)
        bucket.order.touch(r)
      }
      if (bucket.contributions === 0) {
        hosts.buckets.delete(hostname)
        hosts.names.touch(hostname)
      }
    }
  }
}

function hostOutput(hostname: string, bucket: HostBucket): VirtualHost {
  if (bucket.output) return bucket.output
  const ranked = bucket.order.items(
    (r) => bucket.counts.has(r),
    () => bucket.counts.keys(),
  )
  const rules: HttpRule[] = ranked.map((r) => r.rule)
  bucket.output = { hostname, rules }
  return bucket.output
}
