/**
 * Writes computed status back to the API server, so `kubectl get` tells the truth. Rules:
 * - only the leader writes (see leader.ts); followers just remember what they would write;
 * - only objects the translator gave a status (ours); anything else is never touched;
 * - only on change: the server's current status is read and compared, ignoring
 *   lastTransitionTime and fields the CRD schema defaults; unchanged conditions keep their time;
 * - routes (and policies: BackendTLSPolicy, our own CRDs) carry entries of several controllers: only the entries with our
 *   controllerName are written, the others are merged back unchanged, and the patch carries the
 *   resourceVersion it was computed from so a concurrent writer causes a 409 and a retry, not a loss;
 * - requests are paced (qps) and failures retried per object with capped exponential backoff.
 */
import { Backoff, sleep, type BackoffOptions } from '../sources/kubernetes/backoff.ts'
import { isConflict, isNotFound, KubeApiError, type KubeClient } from '../sources/kubernetes/client.ts'
import { discoverResources, objectPath, type ServedResource } from '../sources/kubernetes/discovery.ts'
import { GATEWAY_GROUP, RESOURCE_KINDS } from '../store/kinds.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { StatusMap } from '../translate/types.ts'
import { alwaysLeader, type LeadershipSignal } from './leader.ts'
import { stampTransitions, type StatusSink } from './sink.ts'

/** Kinds whose status we write, and the list in it that several controllers share (null: all ours). */
const STATUS_KINDS: Readonly<Record<string, 'parents' | 'ancestors' | null>> = Object.fromEntries(
  RESOURCE_KINDS.flatMap((k): [string, 'parents' | 'ancestors' | null][] => ('status' in k && k.status ? [[k.kind, k.status === 'own' ? null : k.status]] : [])),
)

export interface GatewayAddress {
  type?: string
  value: string
}

export interface KubernetesStatusSinkOptions {
  readonly client: KubeClient
  readonly controllerName: string
  readonly logger: Logger
  /** Who may write; default: this replica always (single replica). */
  readonly leadership?: LeadershipSignal
  /** Kind → served resource (e.g. KubernetesSource.served); discovered on first use otherwise. */
  readonly resources?: ReadonlyMap<string, ServedResource>
  /** Gateway status.addresses when translation computed none (a Service's load balancer, the pod IP). */
  readonly gatewayAddresses?: () => GatewayAddress[] | undefined
  /** Request pacing (GET + PATCH). Default 20 per second. */
  readonly qps?: number
  readonly backoff?: BackoffOptions
  readonly now?: () => Date
}

export class KubernetesStatusSink implements StatusSink {
  #desired = new Map<string, Record<string, unknown>>()
  /** What the server was last confirmed to hold for a key (the desired JSON it matched). */
  #synced = new Map<string, string>()
  /** Route-like keys we wrote entries into: if translation drops them, our entries are removed. */
  #wroteEntries = new Set<string>()
  #queue = new Set<string>()
  #retries = new Map<string, { backoff: Backoff; timer?: Timer }>()
  #resources: Promise<ReadonlyMap<string, ServedResource>> | undefined
  #draining: Promise<void> | undefined
  #lastRequest = 0
  #stopped = false
  #unsubscribe: () => void
  readonly stats = { reads: 0, patches: 0, conflicts: 0, errors: 0, unchanged: 0 }

  constructor(private readonly opts: KubernetesStatusSinkOptions) {
    if (opts.resources) this.#resources = Promise.resolve(opts.resources)
    this.#unsubscribe = this.#leadership.onChange((leading) => {
      if (!leading) return
      // a new leader trusts nothing the previous one may have written: verify everything
      this.#synced.clear()
      for (const key of this.#desired.keys()) this.#queue.add(key)
      this.#kick()
    })
  }

  get #leadership(): LeadershipSignal {
    return this.opts.leadership ?? alwaysLeader
  }

  publish(status: StatusMap): void {
    const next = new Map<string, Record<string, unknown>>()
    for (const [key, value] of Object.entries(status)) if (kindOf(key) in STATUS_KINDS) next.set(key, value)
    // entries we wrote into objects that translation no longer gives a status: take ours back out
    for (const key of this.#wroteEntries) if (!next.has(key)) next.set(key, { [STATUS_KINDS[kindOf(key)]!]: [] })
    const previous = this.#desired
    for (const [key, value] of next) {
      // Handed over again as the same object (every unchanged route on a one-route edit): the
      // last publish already compared it, and it is synced, queued or being retried since.
      if (previous.get(key) === value) continue
      if (this.#synced.get(key) !== JSON.stringify(value)) this.#queue.add(key)
    }
    for (const key of this.#synced.keys()) if (!next.has(key)) this.#synced.delete(key)
    this.#desired = next
    this.#kick()
  }

  /** Resolves once every queued write has been attempted (retries scheduled later are not awaited). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining
  }

  stop(): void {
    this.#stopped = true
    this.#unsubscribe()
    for (const r of this.#retries.values()) clearTimeout(r.timer)
  }

  #kick(): void {
    if (this.#draining || this.#stopped || !this.#leadership.isLeader || this.#queue.size === 0) return
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined
      this.#kick()
    })
  }

  async #drain(): Promise<void> {
    while (this.#queue.size && !this.#stopped && this.#leadership.isLeader) {
      const key = this.#queue.values().next().value!
      this.#queue.delete(key)
      if (this.#retries.get(key)?.timer) continue // a retry is already scheduled for it
      try {
        await this.#sync(key)
        this.#retries.delete(key)
      } catch (err) {
        this.stats.errors++
        const retry = this.#retries.get(key) ?? { backoff: new Backoff(this.opts.backoff ?? { initialMs: 200, maxMs: 30_000 }) }
        const delay = retry.backoff.next()
        retry.timer = setTimeout(() => {
          retry.timer = undefined
          this.#queue.add(key)
          this.#kick()
        }, delay)
        this.#retries.set(key, retry)
        this.opts.logger.warn('status write failed, will retry', { object: key, error: describe(err), retryInMs: delay })
      }
    }
  }

  async #pace(): Promise<void> {
    const gap = 1000 / (this.opts.qps ?? 20)
    const wait = this.#lastRequest + gap - Date.now()
    if (wait > 0) await sleep(wait)
    this.#lastRequest = Date.now()
  }

  async #sync(key: string, attempt = 0): Promise<void> {
    const desired = this.#desired.get(key)
    if (!desired) return
    const [kind, namespace, name] = splitKey(key)
    const resource = await this.#resource(kind)
    if (!resource?.hasStatus) return
    const path = objectPath(resource, namespace || undefined, name, 'status')
    await this.#pace()
    this.stats.reads++
    let current: any
    try {
      current = await this.opts.client.request('GET', path)
    } catch (err) {
      if (isNotFound(err)) return this.#forget(key) // deleted meanwhile; its watch event will follow
      throw err
    }
    const shared = STATUS_KINDS[kind] ?? null
    const ours = this.#withAddresses(kind, desired)
    const merged = shared ? mergeShared(current.status, ours, shared, this.opts.controllerName) : canonical(ours)
    const stamped = stampTransitions(canonical(current.status), merged, stamp(this.opts.now?.() ?? new Date()))
    const desiredJson = JSON.stringify(desired)
    if (this.#desired.get(key) !== desired) return // superseded while we were reading; the new one is queued
    if (sameStatus(stamped, current.status ?? {})) {
      this.stats.unchanged++
      return this.#record(key, desiredJson, shared, ours)
    }
    // top-level fields we no longer compute are removed (merge patch: null), except shared lists we merged
    const status: Record<string, unknown> = { ...stamped }
    if (!shared) for (const k of Object.keys(current.status ?? {})) if (!(k in status)) status[k] = null
    await this.#pace()
    try {
      await this.opts.client.request('PATCH', path, {
        body: { metadata: { resourceVersion: current.metadata.resourceVersion }, status },
        contentType: 'application/merge-patch+json',
      })
      this.stats.patches++
    } catch (err) {
      if (isConflict(err) && attempt < 3) {
        this.stats.conflicts++
        return this.#sync(key, attempt + 1) // re-read and re-merge right away
      }
      if (isNotFound(err)) return this.#forget(key)
      throw err
    }
    this.#record(key, desiredJson, shared, ours)
  }

  #record(key: string, desiredJson: string, shared: string | null, ours: Record<string, unknown>): void {
    this.#synced.set(key, desiredJson)
    if (!shared) return
    const entries = ours[shared]
    if (Array.isArray(entries) && entries.length) this.#wroteEntries.add(key)
    else this.#wroteEntries.delete(key)
  }

  #forget(key: string): void {
    this.#synced.delete(key)
    this.#wroteEntries.delete(key)
  }

  #withAddresses(kind: string, status: Record<string, unknown>): Record<string, unknown> {
    if (kind !== 'Gateway' || !this.opts.gatewayAddresses) return status
    if (Array.isArray(status.addresses) && status.addresses.length) return status
    const addresses = this.opts.gatewayAddresses()
    return addresses?.length ? { ...status, addresses: addresses.map((a) => ({ type: a.type ?? guessAddressType(a.value), value: a.value })) } : status
  }

  async #resource(kind: string): Promise<ServedResource | undefined> {
    this.#resources ??= discoverResources(this.opts.client, Object.keys(STATUS_KINDS)).catch((err) => {
      this.#resources = undefined
      throw err
    })
    return (await this.#resources).get(kind)
  }
}

/** Other controllers' entries stay as the server has them; ours replace our previous ones. */
function mergeShared(current: any, ours: Record<string, unknown>, field: 'parents' | 'ancestors', controllerName: string): Record<string, unknown> {
  const theirs = (Array.isArray(current?.[field]) ? current[field] : []).filter((e: any) => e?.controllerName !== controllerName)
  const mine = (Array.isArray(ours[field]) ? (ours[field] as any[]) : []).filter((e) => e?.controllerName === controllerName)
  return canonical({ ...(current ?? {}), ...ours, [field]: [...theirs, ...mine] })
}

/**
 * Applies the CRD defaults the server would (parentRef group/kind, supportedKinds group, address
 * type) and fixes the key order of references, so comparing with and stamping against what the
 * server returns matches like with like.
 */
function canonical(status: any): Record<string, unknown> {
  if (!status || typeof status !== 'object') return {}
  const ref = (r: any) => {
    if (!r || typeof r !== 'object') return r
    const out: Record<string, unknown> = { group: r.group ?? GATEWAY_GROUP, kind: r.kind ?? 'Gateway' }
    if (r.namespace !== undefined) out.namespace = r.namespace
    out.name = r.name
    if (r.sectionName !== undefined) out.sectionName = r.sectionName
    if (r.port !== undefined) out.port = r.port
    return out
  }
  const out: Record<string, any> = { ...status }
  if (Array.isArray(status.parents)) out.parents = status.parents.map((p: any) => ({ ...p, parentRef: ref(p?.parentRef) }))
  if (Array.isArray(status.ancestors)) out.ancestors = status.ancestors.map((p: any) => ({ ...p, ancestorRef: ref(p?.ancestorRef) }))
  if (Array.isArray(status.addresses)) out.addresses = status.addresses.map((a: any) => ({ type: a?.type ?? 'IPAddress', ...a }))
  if (Array.isArray(status.listeners))
    out.listeners = status.listeners.map((l: any) => (Array.isArray(l?.supportedKinds) ? { ...l, supportedKinds: l.supportedKinds.map((k: any) => ({ group: k?.group ?? GATEWAY_GROUP, ...k })) } : l))
  return out
}

/**
 * True when writing `next` would change nothing that matters: every field of `next` is on the
 * server with the same value (lastTransitionTime aside), lists have the same length, and the
 * server has no top-level field we would remove. Extra nested fields on the server are CRD
 * defaults, not differences.
 */
export function sameStatus(next: Record<string, unknown>, current: Record<string, unknown>): boolean {
  if (Object.keys(current).some((k) => !(k in next))) return false
  return covers(next, current)
}

function covers(want: any, have: any): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && want.length === have.length && want.every((w, i) => covers(w, have[i]))
  if (want !== null && typeof want === 'object') {
    if (have === null || typeof have !== 'object' || Array.isArray(have)) return false
    return Object.entries(want).every(([k, v]) => k === 'lastTransitionTime' || covers(v, have[k]))
  }
  return want === have
}

/** Gateway addresses from a Service: its load balancer ingress, else its cluster IP. */
export function addressesFromService(service: { spec?: any; status?: any } | undefined): GatewayAddress[] | undefined {
  if (!service) return undefined
  const ingress: any[] = service.status?.loadBalancer?.ingress ?? []
  const lb = ingress.flatMap((i) => (i.ip ? [{ type: 'IPAddress', value: i.ip }] : i.hostname ? [{ type: 'Hostname', value: i.hostname }] : []))
  if (lb.length) return lb
  const ip = service.spec?.clusterIP
  return ip && ip !== 'None' ? [{ type: 'IPAddress', value: ip }] : undefined
}

const guessAddressType = (v: string) => (/^[\d.]+$|:/.test(v) ? 'IPAddress' : 'Hostname')
const stamp = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z')
const kindOf = (key: string) => key.slice(0, key.indexOf('/'))

function splitKey(key: string): [string, string, string] {
  const [kind = '', namespace = '', ...rest] = key.split('/')
  return [kind, namespace, rest.join('/')]
}

function describe(err: unknown): string {
  if (err instanceof KubeApiError) return `${err.status} ${err.reason ?? ''}: ${err.message}`
  return err instanceof Error ? err.message : String(err)
}
