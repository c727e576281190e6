/**
 * The `--kubernetes` config source: one Reflector per served kind, each feeding the store under
 * its own origin ("kubernetes:HTTPRoute") with the full current set of that kind.
 */
import { KINDS } from '../../store/kinds.ts'
import type { Logger } from '../../telemetry/logger.ts'
import type { Source, SourceSink } from '../source.ts'
import { Backoff, sleep, type BackoffOptions } from './backoff.ts'
import { KubeClient } from './client.ts'
import type { KubeConnectionOptions } from './connection.ts'
import { discoverResources, type ServedResource } from './discovery.ts'
import { Reflector } from './reflector.ts'

export interface KubernetesSourceOptions extends KubeConnectionOptions {
  /** A ready client (shared with status write-back); otherwise one is made from the connection options. */
  readonly client?: KubeClient
  /** Watch namespaced kinds in this namespace only. */
  readonly watchNamespace?: string
  readonly logger: Logger
  /** Kinds to watch (default: every kind in KINDS that the server serves). */
  readonly kinds?: readonly string[]
  readonly backoff?: BackoffOptions
  readonly watchTimeoutSeconds?: number
}

export const originOf = (kind: string) => `kubernetes:${kind}`

export class KubernetesSource implements Source {
  readonly name = 'kubernetes'
  #client: KubeClient | undefined
  #reflectors = new Map<string, Reflector>()
  #served = new Map<string, ServedResource>()
  #abort = new AbortController()

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.#client = opts.client
  }

  /** The client in use (available once start() has begun). */
  get client(): KubeClient | undefined {
    return this.#client
  }

  /** Kind → the version and resource the server serves it under (after start()). */
  get served(): ReadonlyMap<string, ServedResource> {
    return this.#served
  }

  get reflectors(): ReadonlyMap<string, Reflector> {
    return this.#reflectors
  }

  async start(sink: SourceSink): Promise<void> {
    const { logger } = this.opts
    this.#client ??= await KubeClient.connect(this.opts)
    const client = this.#client
    const wanted = this.opts.kinds ?? Object.keys(KINDS)
    // the API server may not be reachable yet (a starting cluster, a network policy): keep trying
    const backoff = new Backoff(this.opts.backoff)
    for (;;) {
      try {
        this.#served = await discoverResources(client, wanted)
        break
      } catch (err) {
        if (this.#abort.signal.aborted) return
        const delay = backoff.next()
        logger.warn('kubernetes discovery failed, retrying', { server: client.server, error: err instanceof Error ? err.message : String(err), retryInMs: delay })
        await sleep(delay, this.#abort.signal)
        if (this.#abort.signal.aborted) return
      }
    }
    const skipped = wanted.filter((k) => !this.#served.has(k))
    if (skipped.length) logger.info('kinds not served by the cluster, skipped', { kinds: skipped.join(',') })
    for (const resource of this.#served.values()) {
      const origin = originOf(resource.kind)
      const reflector = new Reflector({
        client,
        resource,
        namespace: this.opts.watchNamespace,
        origin,
        deliver: (objects, problems) => sink.replaceOrigin(origin, objects, problems),
        logger,
        backoff: this.opts.backoff,
        watchTimeoutSeconds: this.opts.watchTimeoutSeconds,
      })
      this.#reflectors.set(resource.kind, reflector)
      reflector.start()
    }
    await Promise.race([Promise.all([...this.#reflectors.values()].map((r) => r.synced)), new Promise<void>((r) => this.#abort.signal.addEventListener('abort', () => r()))])
    logger.info('kubernetes source synced', {
      server: client.server,
      namespace: this.opts.watchNamespace ?? '(all)',
      kinds: [...this.#served.values()].map((r) => `${r.kind}@${r.version}`).join(','),
    })
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    await Promise.all([...this.#reflectors.values()].map((r) => r.stop()))
  }
}
