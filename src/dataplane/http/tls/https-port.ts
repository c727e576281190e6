/**
 * An HTTPS port: the public TLS front plus its certificate generations.
 *
 * A certificate change (the Secret changed) starts a new generation with the new certificates,
 * points the front at it (new handshakes see the new certificate at once) and retires the old
 * one, which finishes the connections it has. No socket a client connects to is ever closed, so
 * no request is lost. A generation that cannot start (a certificate Bun rejects) leaves the
 * previous one serving; certificates that fail on their own are dropped so the port's other
 * listeners keep serving.
 */
import type { Server } from 'bun'
import type { Logger } from '../../log.ts'
import type { PortPlan, TlsEntry } from '../../snapshot.ts'
import { TlsFront } from './front.ts'
import { TlsGeneration, type TlsPeer } from './generation.ts'
import { usableEntries } from './certificates.ts'

/** Starts the inner Bun.serve of a generation on loopback; `peerOf` maps its requestIP() port to the front's peer. */
export type InnerServe = (tls: readonly TlsEntry[], peerOf: (peerPort: number | undefined) => TlsPeer | undefined) => Server<undefined>

export interface HttpsPortDeps {
  readonly hostname: string
  readonly reusePort: boolean
  readonly logger: Logger
  readonly serve: InnerServe
}

export interface HttpsPortUpdate {
  /** A new certificate generation went live. */
  readonly rotated: boolean
  readonly problems: readonly string[]
}

export class HttpsPort {
  readonly #front: TlsFront
  readonly #deps: HttpsPortDeps
  readonly #port: number
  /** Generations still serving connections (the current one included). */
  readonly #generations = new Set<TlsGeneration>()

  private constructor(port: number, front: TlsFront, first: TlsGeneration, deps: HttpsPortDeps) {
    this.#port = port
    this.#front = front
    this.#deps = deps
    this.#generations.add(first)
  }

  /** Bind the port and start the first generation; a string says why it could not. */
  static start(portPlan: PortPlan, deps: HttpsPortDeps): { port: HttpsPort; problems: readonly string[] } | string {
    const started = startGeneration(portPlan, deps)
    if (typeof started === 'string') return started
    try {
      const front = new TlsFront({ hostname: deps.hostname, port: portPlan.port, reusePort: deps.reusePort, logger: deps.logger, settings: portPlan.ir.connection }, started.generation)
      deps.logger.info('https port listening', { port: portPlan.port, boundPort: front.port })
      return { port: new HttpsPort(portPlan.port, front, started.generation, deps), problems: started.problems }
    } catch (err) {
      void started.generation.stop(true)
      const message = err instanceof Error ? err.message : String(err)
      deps.logger.error('https port failed to bind', { port: portPlan.port, error: message })
      return message
    }
  }

  get boundPort(): number {
    return this.#front.port
  }

  get fingerprint(): string {
    return this.#front.current.fingerprint
  }

  /** Generations alive (for tests: old ones stop once their connections close). */
  get generations(): number {
    for (const generation of this.#generations) if (generation.connections === 0 && generation !== this.#front.current) this.#generations.delete(generation)
    return this.#generations.size
  }

  /** Follow the plan's certificates: a new generation when they changed. */
  update(portPlan: PortPlan): HttpsPortUpdate {
    // PROXY protocol and the connection limit apply from the next accept.
    this.#front.settings = portPlan.ir.connection
    if (portPlan.tlsFingerprint === this.#front.current.fingerprint) return { rotated: false, problems: [] }
    const started = startGeneration(portPlan, this.#deps)
    if (typeof started === 'string') {
      this.#deps.logger.error('certificate rotation failed; previous certificates stay live', { port: this.#port, error: started })
      return { rotated: false, problems: [started] }
    }
    const previous = this.#front.current
    this.#front.current = started.generation
    this.#generations.add(started.generation)
    previous.retire()
    this.#deps.logger.info('https certificates rotated', { port: this.#port, draining: previous.connections })
    return { rotated: true, problems: started.problems }
  }

  /** Stop accepting; generations finish in-flight requests (`force` closes everything now). */
  async stop(force: boolean): Promise<void> {
    this.#front.close()
    if (force) this.#front.closeAll()
    await Promise.all([...this.#generations].map((g) => g.stop(force)))
    this.#front.closeAll()
    this.#generations.clear()
  }
}

function startGeneration(portPlan: PortPlan, deps: HttpsPortDeps): { generation: TlsGeneration; problems: string[] } | string {
  const entries = portPlan.tls ?? []
  if (entries.length === 0) return 'HTTPS port has no usable certificate'
  let generation: TlsGeneration | undefined
  const peerOf = (peerPort: number | undefined) => generation?.peerAt(peerPort)
  try {
    generation = new TlsGeneration(deps.serve(entries, peerOf), portPlan.tlsFingerprint)
    return { generation, problems: [] }
  } catch (err) {
    // One bad certificate must not take the port's other listeners down: retry without the
    // entries that fail on their own.
    const { usable, problems } = usableEntries(entries)
    if (usable.length === 0 || usable.length === entries.length) return `TLS setup failed: ${err instanceof Error ? err.message : String(err)}`
    try {
      generation = new TlsGeneration(deps.serve(usable, peerOf), portPlan.tlsFingerprint)
      for (const problem of problems) deps.logger.warn('certificate skipped', { port: portPlan.port, problem })
      return { generation, problems: problems.map((p) => `port ${portPlan.port}: ${p}`) }
    } catch (retryErr) {
      return `TLS setup failed: ${retryErr instanceof Error ? retryErr.message : String(retryErr)}`
    }
  }
}
