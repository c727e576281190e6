/**
 * Admission of new client connections on the HTTP fronts: caps per listener, in total and per
 * client address, and an accept rate. A refused connection is closed in its open handler,
 * before any byte is read or any object is made for it, while the connections already
 * established keep being served (nginx's limit_conn, Envoy's connection_limit and overload
 * manager's global downstream connection limit).
 *
 * The counts are the process's (process-gauges.ts): with `--workers N` every worker admits
 * against the same totals, so a cap means the same whatever the number of workers.
 *
 * Per client address: slowloris variants open many connections from one address, each well
 * within every timeout; the cap bounds what one address can hold.
 */
import { overloadCounters, type RefuseReason } from './metrics.ts'
import { ProcessGauges } from './process-gauges.ts'

export interface GateLimits {
  /** Open front connections of the process, all listeners and workers; 0 = no cap. */
  readonly maxConnections: number
  /** Default cap per listener when its ClientTrafficPolicy sets no connectionLimit; 0 = none. */
  readonly maxListenerConnections: number
  /** Open connections per client address, all listeners; 0 = none. */
  readonly maxConnectionsPerClient: number
  /** New connections accepted per second (burst: one second's worth); 0 = no limit. */
  readonly maxAcceptRate: number
}

export class ConnectionGate {
  /** This data plane's own admitted connections (its share of the metric; the process's is in `gauges`). */
  #open = 0

  constructor(
    readonly limits: GateLimits,
    /** The process's counts: shared with the other workers, or this plane's own. */
    readonly gauges = ProcessGauges.create(),
  ) {}

  /** Connections this data plane admitted and did not release yet. */
  get open(): number {
    return this.#open
  }

  /** Connections open from this address (the process's). */
  openFrom(ip: string): number {
    return this.gauges.openFrom(ip)
  }

  /** The gate of one listener port: what its front admits and releases connections with. */
  forListener(port: number): ListenerGate {
    return new ListenerGate(this, port)
  }

  /** @internal ListenerGate's accounting. */
  admitted(delta: 1 | -1): void {
    this.#open += delta
  }
}

export class ListenerGate {
  readonly #slot: number

  constructor(
    readonly gate: ConnectionGate,
    readonly port: number,
  ) {
    this.#slot = gate.gauges.listenerSlot(port)
  }

  /** The process's counts (request buffering holds its bytes there too). */
  get gauges(): ProcessGauges {
    return this.gate.gauges
  }

  /** Connections open on this listener, all workers. */
  get open(): number {
    return this.gate.gauges.listenerOpen(this.#slot)
  }

  /**
   * Admit a connection from `ip` (the listener's own cap `listenerLimit`, undefined: the
   * default), or say why not. An admitted connection must be released once.
   */
  admit(ip: string, listenerLimit: number | undefined): RefuseReason | undefined {
    const gate = this.gate
    const refused = gate.gauges.admit(ip, this.#slot, listenerLimit ?? gate.limits.maxListenerConnections, gate.limits)
    if (refused !== undefined) {
      overloadCounters.refused[refused]++
      return refused
    }
    gate.admitted(1)
    return undefined
  }

  release(ip: string): void {
    const gate = this.gate
    gate.admitted(-1)
    gate.gauges.release(ip, this.#slot, gate.limits.maxConnectionsPerClient > 0)
  }
}
