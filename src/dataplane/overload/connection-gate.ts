/**
 * Admission of new client connections on the HTTP fronts of one data plane (one worker): caps
 * per listener, per worker and per client address, and an accept rate. A refused connection is
 * closed in its open handler, before any byte is read or any object is made for it, while the
 * connections already established keep being served (nginx's limit_conn, Envoy's
 * connection_limit and overload manager's global downstream connection limit).
 *
 * Per client address: slowloris variants open many connections from one address, each well
 * within every timeout; the cap bounds what one address can hold.
 */
import { overloadCounters, type RefuseReason } from './metrics.ts'

export interface GateLimits {
  /** Open front connections of this worker, all listeners; 0 = no cap. */
  readonly maxConnections: number
  /** Default cap per listener when its ClientTrafficPolicy sets no connectionLimit; 0 = none. */
  readonly maxListenerConnections: number
  /** Open connections per client address, all listeners; 0 = none. */
  readonly maxConnectionsPerClient: number
  /** New connections accepted per second (burst: one second's worth); 0 = no limit. */
  readonly maxAcceptRate: number
}

export class ConnectionGate {
  #open = 0
  readonly #perClient = new Map<string, number>()
  #tokens: number
  #refilledAt = performance.now()

  constructor(readonly limits: GateLimits) {
    this.#tokens = limits.maxAcceptRate
  }

  /** Connections admitted and not yet released. */
  get open(): number {
    return this.#open
  }

  /** Connections open from this address. */
  openFrom(ip: string): number {
    return this.#perClient.get(ip) ?? 0
  }

  /**
   * Admit a connection from `ip` on a listener holding `listenerOpen` connections (its own cap
   * `listenerLimit`, undefined: the default), or say why not. An admitted connection must be
   * released once.
   */
  admit(ip: string, listenerOpen: number, listenerLimit: number | undefined): RefuseReason | undefined {
    const limits = this.limits
    const perListener = listenerLimit ?? limits.maxListenerConnections
    let refused: RefuseReason | undefined
    if (perListener > 0 && listenerOpen >= perListener) refused = 'listener'
    else if (limits.maxConnections > 0 && this.#open >= limits.maxConnections) refused = 'process'
    else if (limits.maxConnectionsPerClient > 0 && (this.#perClient.get(ip) ?? 0) >= limits.maxConnectionsPerClient) refused = 'client'
    else if (limits.maxAcceptRate > 0 && !this.#takeToken()) refused = 'rate'
    if (refused !== undefined) {
      overloadCounters.refused[refused]++
      return refused
    }
    this.#open++
    if (limits.maxConnectionsPerClient > 0) this.#perClient.set(ip, (this.#perClient.get(ip) ?? 0) + 1)
    return undefined
  }

  release(ip: string): void {
    this.#open--
    if (this.limits.maxConnectionsPerClient > 0) {
      const n = (this.#perClient.get(ip) ?? 1) - 1
      if (n <= 0) this.#perClient.delete(ip)
      else this.#perClient.set(ip, n)
    }
  }

  /** Token bucket: refilled by elapsed time at each accept (no timer). */
  #takeToken(): boolean {
    const rate = this.limits.maxAcceptRate
    const now = performance.now()
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilledAt) * rate) / 1000)
    this.#refilledAt = now
    if (this.#tokens < 1) return false
    this.#tokens--
    return true
  }
}
