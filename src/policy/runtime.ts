/**
 * The runtime side of the policy contract: what a policy feature compiles to and what it sees
 * of a request. The data plane compiles every feature of a rule's chain once per snapshot
 * (src/dataplane/http/chain.ts) and runs it on either HTTP path: the front's direct path
 * (head-only chains, awaited there when a hook answers with a promise) or the loopback
 * Bun.serve pipeline (everything).
 *
 * A runtime never reads Kubernetes objects; it gets the feature's IR (src/policy/kind.ts).
 */
import type { Phase, PolicyIr, PolicyName } from './kind.ts'
import type { RuntimePool } from '../dataplane/upstream/pool.ts'

/** State kept across snapshot swaps, keyed by PolicyIr.id (src/dataplane/policy-state.ts). */
export interface PolicyStateView {
  /** The state object for `id`, created by `create` the first time (or after the id left the live plan). */
  obtain<T extends object>(id: string, create: () => T): T
}

export interface CompileContext {
  /** The snapshot's pools, for features that call backends (PolicyIr.pools). */
  readonly pools: ReadonlyMap<string, RuntimePool>
  readonly state: PolicyStateView
  /** The rule's PathPrefix match without trailing slashes ("" for "/"), undefined for other matches. */
  readonly prefix: string | undefined
  /** The IR rule the chain is compiled for (HttpRule.id): per-route state such as rate-limit buckets. */
  readonly ruleId?: string
}

export interface PolicyRuntime<K extends PolicyName = PolicyName> {
  readonly name: K
  readonly phase: Phase
  /** Breaks ties within a phase (lower first); then manifest order. */
  readonly order: number
  compile(ir: PolicyIr<K>, ctx: CompileContext): CompiledPolicy
}

/** A local answer: the request goes no further (no upstream). */
export interface LocalReply {
  readonly status: number
  readonly headers?: readonly (readonly [string, string])[]
  /** Sent as is; without a content-type header a body is labelled text/plain; charset=utf-8. */
  readonly body?: string
}

/** undefined = continue with the next entry. */
export type Verdict = LocalReply | undefined

export interface ResponseHeadView {
  readonly status: number
  /** The response fields going to the client, editable. */
  readonly headers: Headers
}

export type UpstreamOutcome = { readonly kind: 'response'; readonly status: number } | { readonly kind: 'refused' | 'reset' | 'timeout' }

/** A replacement response body (wrapResponseBody). */
export type ResponseBody = ReadableStream<Uint8Array> | Uint8Array

export interface CompiledPolicy {
  /**
   * Reads only the request head and the client address through PolicyRequest (never the body),
   * and has no response, body or outcome hooks: the front's direct path runs it and the rule
   * keeps its fast path. onRequest may answer with a promise (a Redis call, a new JWT, a bcrypt
   * password, an authorization service): the front then buffers what the client sends meanwhile
   * (the body, pipelined requests), awaits the verdict and forwards the request itself, so the
   * chain runs once per request. Answering synchronously whenever possible (caches) still saves
   * the promise and its tick.
   */
  readonly headOnly: boolean
  onRequest?(req: PolicyRequest): Verdict | Promise<Verdict>
  /** Response head on its way to the client (also local answers on the pipeline). Pipeline only. */
  onResponseHead?(res: ResponseHeadView, req: PolicyRequest): void
  /**
   * A forwarded response on its way to the client, after the response-head hooks: return a body
   * that replaces it (compression), editing `res.headers` to match, or undefined to leave it as
   * it is. The replacement is a stream, or a promise of one or of bytes (sent with their
   * Content-Length). `body()` is the body so far (the upstream's, or an earlier policy's
   * replacement; null when there is none); calling it only when replacing keeps untouched
   * responses cheap (a byte body stays a byte body). Pipeline only.
   */
  wrapResponseBody?(res: ResponseHeadView, req: PolicyRequest, body: () => ReadableStream<Uint8Array> | null): ResponseBody | Promise<ResponseBody> | undefined
  /** Each upstream attempt's outcome ("address:port" of the endpoint). Pipeline only. */
  onUpstreamOutcome?(endpoint: string, outcome: UpstreamOutcome): void
}

/**
 * The request as a policy sees it, the same on both paths (front: a view over the parsed head,
 * front/head-request.ts; pipeline: RequestState, http/context.ts).
 */
export interface PolicyRequest {
  readonly method: string
  /** Path as the client sent it (no query, never rewritten). */
  readonly path: string
  /** Query with its "?", or "". */
  readonly query: string
  /** Host for matching: lower-case, no port. */
  readonly host: string
  /** A client request field by lower-case name; repeated fields comma-joined; null when absent. */
  header(name: string): string | null
  /** The TCP peer's address: what the forwarding headers append, whatever a policy decides. */
  readonly peerIp: string
  /** The client as later policies, backend pickers (ConsistentHash ClientIP) and logs see it. Client-phase policies set it. */
  clientIp: string
  /**
   * Set a field on the upstream request (replacing the client's). Names the proxy owns (Host,
   * framing, hop-by-hop, X-Forwarded-*, Forwarded) are ignored.
   */
  setUpstreamHeader(name: string, value: string): void
  /** Remove a field from the upstream request (same exceptions). */
  removeUpstreamHeader(name: string): void
  /** true (default): an X-Request-Id is generated upstream when none is sent. */
  generateRequestId: boolean
  /** The X-Request-Id going upstream so far (a policy's, else the client's); undefined when none (yet). */
  readonly requestId: string | undefined
}

/** Lower-case field names a policy may not set or remove on the upstream request. */
export const PROXY_OWNED_FIELDS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
])

/** One response for a local reply (the pipeline's way; the front writes the same fields itself). */
export function replyResponse(reply: LocalReply): Response {
  const headers = new Headers()
  for (const [name, value] of reply.headers ?? []) headers.append(name, value)
  if (reply.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'text/plain; charset=utf-8')
  return new Response(reply.body ?? null, { status: reply.status, headers })
}
