/**
 * One kind's list-then-watch loop, client-go's Reflector in miniature. It keeps the full current
 * set of the kind and hands it to `deliver` after every change. Recovery rules:
 * - the server ends a watch cleanly (timeout): watch again from the last resourceVersion;
 * - a connection error or 5xx: back off (exponentially, capped), then resume from the last
 *   resourceVersion, so nothing that happened meanwhile is lost and nothing is replayed twice;
 * - 410 Gone (HTTP status or ERROR event): that version was compacted away, so relist; the relist
 *   replaces the whole set, so objects deleted while the watch was down disappear.
 * Bookmarks only advance the resourceVersion, which keeps resumes cheap and 410s rare.
 */
import { keyOf, normalise, type K8sObject } from '../../store/kinds.ts'
import type { Logger } from '../../telemetry/logger.ts'
import type { LoadProblem } from '../source.ts'
import { Backoff, sleep, type BackoffOptions } from './backoff.ts'
import { isGone, KubeApiError, type KubeClient, type WatchEvent } from './client.ts'
import { collectionPath, type ServedResource } from './discovery.ts'

export interface ReflectorOptions {
  readonly client: KubeClient
  readonly resource: ServedResource
  /** Only this namespace (namespaced kinds); cluster-scoped kinds are always watched cluster-wide. */
  readonly namespace?: string
  readonly origin: string
  readonly deliver: (objects: K8sObject[], problems: LoadProblem[]) => void
  readonly logger: Logger
  readonly backoff?: BackoffOptions
  /** Server-side watch timeout; the watch is then renewed from the last resourceVersion. */
  readonly watchTimeoutSeconds?: number
}

type Entry = { object: K8sObject } | { problem: LoadProblem }

class WatchExpired extends Error {}

export class Reflector {
  #entries = new Map<string, Entry>()
  #resourceVersion = ''
  #abort = new AbortController()
  #backoff: Backoff
  #flushTimer: Timer | undefined
  #synced!: () => void
  #running: Promise<void> | undefined
  /** Resolves once the first list has been delivered. */
  readonly synced = new Promise<void>((resolve) => (this.#synced = resolve))
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, events: 0, bookmarks: 0, expired: 0, errors: 0 }

  constructor(private readonly opts: ReflectorOptions) {
    this.#backoff = new Backoff(opts.backoff)
  }

  get resourceVersion(): string {
    return this.#resourceVersion
  }

  start(): void {
    this.#running ??= this.#run()
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    clearTimeout(this.#flushTimer)
    await this.#running
  }

  async #run(): Promise<void> {
    const { logger, resource } = this.opts
    const signal = this.#abort.signal
    let needList = true
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#list()
          needList = false
        }
        await this.#watch()
      } catch (err) {
        if (signal.aborted) break
        if (err instanceof WatchExpired || isGone(err)) {
          // a compacted resourceVersion: only a fresh list can tell what changed meanwhile
          this.stats.expired++
          logger.info('kubernetes watch expired, relisting', { kind: resource.kind, resourceVersion: this.#resourceVersion })
          needList = true
          continue
        }
        this.stats.errors++
        const delay = this.#backoff.next()
        logger.warn('kubernetes watch failed, retrying', { kind: resource.kind, error: describe(err), retryInMs: delay })
        await sleep(delay, signal)
      }
    }
  }

  async #list(): Promise<void> {
    const { client, resource, namespace } = this.opts
    // no resourceVersion: a consistent read of the latest state, never an older cached one
    const list = await client.request<{ metadata?: { resourceVersion?: string }; items?: any[] }>('GET', collectionPath(resource, namespace), { signal: this.#abort.signal, timeoutMs: 60_000 })
    const entries = new Map<string, Entry>()
    for (const raw of list.items ?? []) {
      const entry = this.#toEntry(raw)
      if (entry) entries.set(entry[0], entry[1])
    }
    this.#entries = entries
    this.#resourceVersion = list.metadata?.resourceVersion ?? ''
    this.stats.lists++
    this.#backoff.reset()
    this.#flush()
    this.#synced()
  }

  async #watch(): Promise<void> {
    const { client, resource, namespace } = this.opts
    const timeout = this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300)
    const started = Date.now()
    let events = 0
    this.stats.watches++
    const stream = client.watch(
      collectionPath(resource, namespace),
      { resourceVersion: this.#resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeout) },
      { signal: this.#abort.signal, deadlineMs: (timeout + 30) * 1000 },
    )
    for await (const event of stream) {
      events++
      this.#apply(event)
      if (events === 1) this.#backoff.reset()
    }
    // a server that closes every watch at once would otherwise make this a busy loop
    if (events === 0 && Date.now() - started < 1000 && !this.#abort.signal.aborted) throw new Error('watch closed immediately')
  }

  #apply(event: WatchEvent): void {
    const rv: string | undefined = event.object?.metadata?.resourceVersion
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const entry = this.#toEntry(event.object)
        if (entry) this.#entries.set(entry[0], entry[1])
        this.stats.events++
        break
      }
      case 'DELETED': {
        const entry = this.#toEntry(event.object)
        if (entry) this.#entries.delete(entry[0])
        this.stats.events++
        break
      }
      case 'BOOKMARK':
        this.stats.bookmarks++
        break
      case 'ERROR': {
        const status = event.object
        if (status?.code === 410) throw new WatchExpired(status.message ?? 'resource version expired')
        throw new KubeApiError(status?.code ?? 500, status?.reason, status?.message ?? 'watch error')
      }
    }
    if (rv) this.#resourceVersion = rv
    if (event.type !== 'BOOKMARK') this.#scheduleFlush()
  }

  /** Events that arrive together (one chunk, one burst) are delivered as one change. */
  #scheduleFlush(): void {
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined
      this.#flush()
    }, 0)
  }

  #flush(): void {
    clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    const objects: K8sObject[] = []
    const problems: LoadProblem[] = []
    for (const e of this.#entries.values()) {
      if ('object' in e) objects.push(e.object)
      else problems.push(e.problem)
    }
    this.opts.deliver(objects, problems)
  }

  #toEntry(raw: any): [string, Entry] | undefined {
    if (!raw || typeof raw !== 'object') return undefined
    const { resource, origin } = this.opts
    // list items of built-in kinds come without apiVersion/kind
    const o = { ...raw, apiVersion: raw.apiVersion ?? resource.apiVersion, kind: raw.kind ?? resource.kind }
    o.metadata = slimMetadata(o.metadata)
    const key = keyOf(o)
    const result = normalise(o)
    if (result === null) return undefined
    if ('object' in result) return [key, { object: result.object }]
    return [key, { problem: { origin, objectKey: key, message: result.problems.join('; ') } }]
  }
}

/** managedFields and kubectl's last-applied copy can double an object's size and nobody here reads them. */
function slimMetadata(md: any): any {
  if (!md || typeof md !== 'object') return md
  const { managedFields: _, ...rest } = md
  if (rest.annotations && 'kubectl.kubernetes.io/last-applied-configuration' in rest.annotations) {
    const { 'kubectl.kubernetes.io/last-applied-configuration': _l, ...annotations } = rest.annotations
    rest.annotations = annotations
  }
  return rest
}

function describe(err: unknown): string {
  if (err instanceof KubeApiError) return `${err.status} ${err.reason ?? ''}: ${err.message}`
  return err instanceof Error ? err.message : String(err)
}
