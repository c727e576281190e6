/**
 * A small Kubernetes REST client on Bun's fetch: JSON requests with Status-aware errors, and
 * watches read as newline-delimited JSON events. Just what the watcher, status writer and
 * leader election need, with TLS that actually uses the cluster CA under Bun.
 */
import { loadKubeConfig, transportFromKubeConfig, type KubeConnectionOptions, type KubeTransport } from './connection.ts'

export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string | undefined,
    message: string,
  ) {
    super(message)
  }
}

export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'
  readonly object: any
}

export interface RequestOptions {
  readonly body?: unknown
  readonly contentType?: string
  readonly signal?: AbortSignal
  readonly timeoutMs?: number
}

export class KubeClient {
  constructor(
    readonly transport: KubeTransport,
    private readonly userAgent = 'portico',
  ) {}

  static async connect(opts: KubeConnectionOptions = {}): Promise<KubeClient> {
    return new KubeClient(transportFromKubeConfig(await loadKubeConfig(opts)))
  }

  get server(): string {
    return this.transport.server
  }

  async request<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const { headers, tls } = await this.transport.prepare()
    const signals = [AbortSignal.timeout(opts.timeoutMs ?? 30_000)]
    if (opts.signal) signals.push(opts.signal)
    const res = await fetch(this.server + path, {
      method,
      headers: {
        ...headers,
        accept: 'application/json',
        'user-agent': this.userAgent,
        ...(opts.body !== undefined ? { 'content-type': opts.contentType ?? 'application/json' } : {}),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.any(signals),
      tls,
    })
    const text = await res.text()
    if (!res.ok) throw apiError(res.status, text)
    return (text ? parseJson(text) : undefined) as T
  }

  /**
   * Opens a watch and yields its events until the server ends the stream. Throws KubeApiError
   * for a refused watch (e.g. 410 Gone), and the network error when the connection breaks.
   * `deadlineMs` aborts a stream that outlives its server-side timeout (a silently dead peer).
   */
  async *watch(path: string, params: Record<string, string>, opts: { signal?: AbortSignal; deadlineMs?: number } = {}): AsyncGenerator<WatchEvent> {
    const { headers, tls } = await this.transport.prepare()
    const query = new URLSearchParams({ ...params, watch: 'true' })
    const signals = [AbortSignal.timeout(opts.deadlineMs ?? 15 * 60_000)]
    if (opts.signal) signals.push(opts.signal)
    const res = await fetch(`${this.server}${path}?${query}`, {
      headers: { ...headers, accept: 'application/json', 'user-agent': this.userAgent },
      signal: AbortSignal.any(signals),
      tls,
    })
    if (!res.ok || !res.body) throw apiError(res.status, await res.text())
    const decoder = new TextDecoder()
    let buffered = ''
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true })
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        if (line) yield parseJson(line) as WatchEvent
      }
    }
    if (buffered.trim()) yield parseJson(buffered) as WatchEvent
  }
}

/**
 * JSON.parse, with an error that does not quote the text: its messages can carry a token of
 * the body (a Secret's data, in a list or watch of Secrets), and these errors are logged.
 */
function parseJson(text: string): any {
  try {
    return JSON.parse(text)
  } catch {
    throw new Error(`the API server sent invalid JSON (${text.length} characters)`)
  }
}

function apiError(status: number, text: string): KubeApiError {
  let message = text.slice(0, 500) || `HTTP ${status}`
  let reason: string | undefined
  try {
    const s = JSON.parse(text)
    if (s?.kind === 'Status') {
      message = s.message ?? message
      reason = s.reason
    }
  } catch {}
  return new KubeApiError(status, reason, message)
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.status === 404
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.status === 409
export const isGone = (err: unknown) => err instanceof KubeApiError && err.status === 410
