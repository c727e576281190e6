/**
 * HTTP/2 sessions to gRPC backends: h2c (prior knowledge; appProtocol kubernetes.io/h2c or grpc)
 * and h2 over TLS (BackendTLSPolicy: SNI, CA bundle or the system store, subjectAltNames), one
 * small pool per origin. A session multiplexes up to its peer's MAX_CONCURRENT_STREAMS (capped
 * at 100) calls; GOAWAY, an error or close retires it and the next call opens another. Idle
 * sessions close after a minute and never keep the process alive.
 */
import http2, { type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2'
import type { UpstreamTls } from '../upstream/pool.ts'

const MAX_STREAMS_PER_SESSION = 100
const SESSION_IDLE_MS = 60_000

export class UpstreamSession {
  active = 0
  usable = true
  /** The error that ended the session (ECONNREFUSED...), for calls that die with it. */
  error: Error | undefined
  /** Settles once: undefined when connected, or the error the connect failed with (refused, TLS). */
  readonly ready: Promise<Error | undefined>

  constructor(readonly session: ClientHttp2Session) {
    this.ready = new Promise((resolve) => {
      session.once('connect', () => resolve(undefined))
      session.once('error', (err: Error) => resolve(err))
      session.once('close', () => resolve(this.error ?? new Error('session closed')))
    })
  }
}

class OriginPool {
  readonly sessions = new Set<UpstreamSession>()

  constructor(
    readonly origin: string,
    readonly tls: UpstreamTls | undefined,
  ) {}

  acquire(): UpstreamSession {
    for (const s of this.sessions) if (s.usable && s.active < capacity(s.session)) return s
    return this.#open()
  }

  #open(): UpstreamSession {
    const options: SecureClientSessionOptions = { settings: { enablePush: false } }
    let origin = this.origin
    if (this.tls) {
      options.servername = this.tls.serverName
      options.ALPNProtocols = ['h2']
      if (this.tls.ca !== undefined) options.ca = this.tls.ca
      if (this.tls.checkServerIdentity) options.checkServerIdentity = this.tls.checkServerIdentity as SecureClientSessionOptions['checkServerIdentity']
      origin = origin.replace(/^http:/, 'https:')
    }
    const session = http2.connect(origin, options)
    const pooled = new UpstreamSession(session)
    this.sessions.add(pooled)
    const retire = () => {
      pooled.usable = false
      this.sessions.delete(pooled)
    }
    session.on('goaway', retire)
    session.on('error', (err: Error) => {
      pooled.error = err
      retire()
    })
    session.on('close', retire)
    session.setTimeout(SESSION_IDLE_MS, () => {
      if (pooled.active > 0) return
      retire()
      session.close()
    })
    session.unref()
    return pooled
  }
}

function capacity(session: ClientHttp2Session): number {
  const remote = session.remoteSettings?.maxConcurrentStreams
  return Math.min(MAX_STREAMS_PER_SESSION, remote && remote > 0 ? remote : MAX_STREAMS_PER_SESSION)
}

const pools = new Map<string, OriginPool>()

/** A session to `origin` ("http://10.0.0.1:50051"), over TLS when `tls` is set. */
export function upstreamSession(origin: string, tls: UpstreamTls | undefined): UpstreamSession {
  const key = tls ? `${origin}|${tls.serverName}|${tls.ca === undefined ? '' : Bun.hash(tls.ca).toString(36)}|${tls.checkServerIdentity ? 'san' : ''}` : origin
  let pool = pools.get(key)
  // A new CA or SAN list (same key) reuses the pool: identity checks are bound per session, so an old one keeps its check until it retires.
  if (!pool || pool.tls?.checkServerIdentity !== tls?.checkServerIdentity) {
    for (const s of pool?.sessions ?? []) s.session.close()
    pool = new OriginPool(origin, tls)
    pools.set(key, pool)
  }
  return pool.acquire()
}

/** Connected: undefined; or the error the session failed with (refused, TLS verification). */
export function whenConnected(pooled: UpstreamSession): Promise<Error | undefined> | Error | undefined {
  if (pooled.error) return pooled.error
  const session = pooled.session
  if (!session.connecting) return session.destroyed ? new Error('session closed') : undefined
  return pooled.ready
}

/** Close every upstream gRPC session (data plane stop, tests). */
export function closeUpstreamSessions(): void {
  for (const pool of pools.values()) for (const s of pool.sessions) s.session.destroy()
  pools.clear()
}
