/**
 * Per-request state shared by matching, filters and the proxy. One object per request;
 * filters mutate it (path, authority, upstream headers) instead of building new requests.
 */
import type { MatchInput } from './match.ts'
import type { RuntimePool } from '../upstream/pool.ts'
import { stripHopByHop } from './headers.ts'
import { PROXY_OWNED_FIELDS, type PolicyRequest } from '../../policy/runtime.ts'

export interface MirrorTarget {
  readonly pool: RuntimePool
  readonly percent: number
}

/** Also the pipeline's PolicyRequest (policy/runtime.ts): what a chain entry sees of the request. */
export class RequestState implements MatchInput, PolicyRequest {
  /** Path as the client sent it (never rewritten): rewrites and redirects derive from it. */
  readonly originalPath: string
  /** Path to send upstream; URLRewrite changes it. */
  path: string
  /** Query string including its "?", or "" (kept through rewrites and redirects). */
  query: string
  /** Host header value to send upstream: as the client sent it, unless URLRewrite sets a hostname. */
  authority: string
  /** RequestMirror targets collected by filters; fired once the final upstream request is known. */
  mirrors: MirrorTarget[] | undefined
  /** The client as policies, pickers and logs see it: the peer unless clientIPDetection says otherwise. */
  clientIp: string
  /** false: no X-Request-Id is generated when none goes upstream (requestID Preserve/Disable). */
  generateRequestId = true
  #upstreamHeaders: Headers | undefined
  #params: URLSearchParams | undefined

  constructor(
    readonly req: Request,
    readonly method: string,
    path: string,
    query: string,
    /** Host for matching/redirects: lower-case, no port. */
    readonly host: string,
    /** The TCP peer (through the front: the client connection's); forwarding headers append it. */
    readonly peerIp: string,
    readonly scheme: 'http' | 'https',
    /** The Gateway listener port (what clients connected to), used by redirects. */
    readonly listenerPort: number,
    /** The client's Host header when the caller already read it (saves a native call). */
    hostHeader: string | null = req.headers.get('host'),
  ) {
    this.originalPath = path
    this.path = path
    this.query = query
    this.authority = hostHeader ?? host
    this.clientIp = peerIp
  }

  header(name: string): string | null {
    return this.req.headers.get(name)
  }

  setUpstreamHeader(name: string, value: string): void {
    const lower = name.toLowerCase()
    if (!PROXY_OWNED_FIELDS.has(lower)) this.upstreamHeaders.set(lower, value)
  }

  removeUpstreamHeader(name: string): void {
    const lower = name.toLowerCase()
    if (!PROXY_OWNED_FIELDS.has(lower)) this.upstreamHeaders.delete(lower)
  }

  get requestId(): string | undefined {
    return (this.#upstreamHeaders ?? this.req.headers).get('x-request-id') ?? undefined
  }

  /** Client headers, for matching. */
  get headers(): Headers {
    return this.req.headers
  }

  /** Headers for the upstream request: a copy of the client's minus hop-by-hop, made on first use. */
  get upstreamHeaders(): Headers {
    if (!this.#upstreamHeaders) {
      this.#upstreamHeaders = new Headers(this.req.headers)
      stripHopByHop(this.#upstreamHeaders)
    }
    return this.#upstreamHeaders
  }

  /** The upstream copy if a filter made one, else undefined: lets the proxy read the client's headers without copying them. */
  get modifiedUpstreamHeaders(): Headers | undefined {
    return this.#upstreamHeaders
  }

  queryParam(name: string): string | undefined {
    if (this.query === '') return undefined
    this.#params ??= new URLSearchParams(this.query)
    return this.#params.get(name) ?? undefined
  }
}
