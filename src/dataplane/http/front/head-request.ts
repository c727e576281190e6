/**
 * The front's PolicyRequest: a view over the parsed request head, built only for rules whose
 * chain is not empty (a plain route allocates nothing). Upstream edits are recorded by name and
 * applied when the front writes the upstream head (client-connection.ts).
 */
import { PROXY_OWNED_FIELDS, type PolicyRequest } from '../../../policy/runtime.ts'
import type { RequestHead } from './request-head.ts'

export class HeadRequest implements PolicyRequest {
  clientIp: string
  generateRequestId = true
  /** Upstream edits by lower-case name: the value to send, or null to send none. undefined: no edit. */
  edits: Map<string, string | null> | undefined

  constructor(
    readonly head: RequestHead,
    readonly peerIp: string,
    /** Host for matching: lower-case, no port. */
    readonly host: string,
  ) {
    this.clientIp = peerIp
  }

  get method(): string {
    return this.head.method
  }

  get path(): string {
    return this.head.path
  }

  get query(): string {
    return this.head.query
  }

  header(name: string): string | null {
    return this.head.get(name)
  }

  setUpstreamHeader(name: string, value: string): void {
    const lower = name.toLowerCase()
    if (!PROXY_OWNED_FIELDS.has(lower)) (this.edits ??= new Map()).set(lower, value)
  }

  removeUpstreamHeader(name: string): void {
    const lower = name.toLowerCase()
    if (!PROXY_OWNED_FIELDS.has(lower)) (this.edits ??= new Map()).set(lower, null)
  }

  get requestId(): string | undefined {
    const edited = this.edits?.get('x-request-id')
    if (edited !== undefined) return edited ?? undefined
    return this.head.requestId ? (this.head.get('x-request-id') ?? undefined) : undefined
  }
}
