/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * whoever holds an unexpired lease leads; the leader renews every retry period and steps down
 * when it could not renew within the renew deadline; others take over once the lease has not
 * changed for a whole lease duration (measured on their own clock, so clock skew between
 * replicas does not matter). Stop releases the lease so a successor need not wait it out.
 */
import { Backoff, sleep } from '../sources/kubernetes/backoff.ts'
import { isConflict, isNotFound, type KubeClient } from '../sources/kubernetes/client.ts'
import type { Logger } from '../telemetry/logger.ts'

export interface LeaseElectorOptions {
  readonly client: KubeClient
  /** Namespace of the Lease (usually the pod's own, from the downward API). */
  readonly namespace: string
  readonly name: string
  /** Unique per replica: the pod name. */
  readonly identity: string
  readonly logger: Logger
  readonly leaseDurationSeconds?: number
  readonly renewDeadlineSeconds?: number
  readonly retryPeriodSeconds?: number
}

/** Anything that can say whether this replica may write (tests and single-replica setups use a constant). */
export interface LeadershipSignal {
  readonly isLeader: boolean
  onChange(fn: (leading: boolean) => void): () => void
}

interface LeaseSpec {
  holderIdentity?: string
  leaseDurationSeconds?: number
  acquireTime?: string
  renewTime?: string
  leaseTransitions?: number
}

/** metav1.MicroTime wants exactly six fractional digits. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')

export class LeaseElector implements LeadershipSignal {
  #leading = false
  #listeners = new Set<(leading: boolean) => void>()
  #abort = new AbortController()
  #running: Promise<void> | undefined
  #lastRenew = 0
  #observed: { record: string; at: number } | undefined
  readonly #duration: number
  readonly #renewDeadline: number
  readonly #retry: number

  constructor(private readonly opts: LeaseElectorOptions) {
    this.#duration = opts.leaseDurationSeconds ?? 15
    this.#renewDeadline = opts.renewDeadlineSeconds ?? 10
    this.#retry = opts.retryPeriodSeconds ?? 2
    if (!(this.#duration > this.#renewDeadline && this.#renewDeadline > this.#retry)) throw new Error('lease duration > renew deadline > retry period is required')
  }

  get isLeader(): boolean {
    return this.#leading
  }

  onChange(fn: (leading: boolean) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  start(): void {
    this.#running ??= this.#run()
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    await this.#running
    if (this.#leading) {
      this.#set(false)
      await this.#release().catch((err) => this.opts.logger.warn('could not release leader lease', { error: String(err) }))
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    const backoff = new Backoff({ initialMs: this.#retry * 1000, maxMs: this.#retry * 1000 })
    while (!signal.aborted) {
      let ok = false
      try {
        ok = await this.#tryAcquireOrRenew()
      } catch (err) {
        this.opts.logger.warn('leader lease request failed', { lease: `${this.opts.namespace}/${this.opts.name}`, error: err instanceof Error ? err.message : String(err) })
      }
      if (signal.aborted) break
      if (ok) {
        this.#lastRenew = Date.now()
        if (!this.#leading) this.#set(true)
      } else if (this.#leading && Date.now() - this.#lastRenew > this.#renewDeadline * 1000) {
        this.#set(false) // could not renew in time: someone else may take over now, so stop writing first
      }
      await sleep(backoff.next(), signal) // jittered so candidates do not collide
    }
  }

  #set(leading: boolean): void {
    if (this.#leading === leading) return
    this.#leading = leading
    this.opts.logger.info(leading ? 'became leader: writing status' : 'lost leadership: not writing status', { identity: this.opts.identity, lease: `${this.opts.namespace}/${this.opts.name}` })
    for (const fn of this.#listeners) fn(leading)
  }

  #path(name?: string): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`
    return name ? `${base}/${name}` : base
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, identity, name } = this.opts
    const now = new Date()
    let lease: { metadata: { resourceVersion: string }; spec?: LeaseSpec }
    try {
      lease = await client.request('GET', this.#path(name), { timeoutMs: this.#renewDeadline * 1000 })
    } catch (err) {
      if (!isNotFound(err)) throw err
      const spec: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: this.#duration, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 }
      try {
        await client.request('POST', this.#path(), { body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: this.opts.namespace }, spec } })
        return true
      } catch (e) {
        if (isConflict(e)) return false // another replica created it first
        throw e
      }
    }
    const spec = lease.spec ?? {}
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, lease.metadata.resourceVersion])
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() }
    const heldByOther = spec.holderIdentity && spec.holderIdentity !== identity
    const duration = (spec.leaseDurationSeconds ?? this.#duration) * 1000
    if (heldByOther && this.#observed.at + duration > Date.now()) return false
    const ours = spec.holderIdentity === identity
    const next: LeaseSpec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.#duration,
      renewTime: microTime(now),
      acquireTime: ours && spec.acquireTime ? spec.acquireTime : microTime(now),
      leaseTransitions: ours ? spec.leaseTransitions ?? 0 : (spec.leaseTransitions ?? 0) + 1,
    }
    try {
      await client.request('PUT', this.#path(name), { body: { ...lease, spec: next }, timeoutMs: this.#renewDeadline * 1000 })
      return true
    } catch (err) {
      if (isConflict(err)) return false // someone else wrote it between our read and write
      throw err
    }
  }

  async #release(): Promise<void> {
    const lease = await this.opts.client.request('GET', this.#path(this.opts.name))
    if (lease.spec?.holderIdentity !== this.opts.identity) return
    const now = microTime(new Date())
    await this.opts.client.request('PUT', this.#path(this.opts.name), { body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now } } })
  }
}

/** For a single replica (or tests): always the leader. */
export const alwaysLeader: LeadershipSignal = { isLeader: true, onChange: () => () => {} }
