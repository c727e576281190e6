/**
 * Request buffering (nginx's proxy_request_buffering, Envoy Gateway's BackendTrafficPolicy
 * requestBuffer): a request body is received whole before the backend is called, so a client
 * that uploads at 1 byte/s holds a socket of ours and nothing of the backend's. Measured before
 * this existed: 200 slow POSTs held 202 upstream connections (nginx: 1).
 *
 * Bounded twice: a body larger than the limit (the route's requestBuffer.limit, else
 * --request-buffer-size) is not held at all (or refused with 413 when a policy set the limit),
 * and all held bodies of the process (every worker: process-gauges.ts) together stay under
 * --request-buffer-total: past it a body streams, as it did before, rather than wait for memory.
 */
import { ChunkedDecodeError, ChunkedDecoder } from '../../upstream/http1/chunked.ts'
import type { ProcessGauges } from '../../overload/process-gauges.ts'
import type { RequestHead } from './request-head.ts'

/** Bytes held by every HeldBody of this isolate (its share of the metric, summed over workers). */
let heldTotal = 0

/** What this worker's fronts hold right now (metrics, tests). */
export function heldRequestBytes(): number {
  return heldTotal
}

export const enum HoldResult {
  /** Still incomplete: keep holding. */
  More,
  /** The whole body is here: forward it. */
  Complete,
  /** Over the limit or the process's total (or malformed): forward what we have and stream the rest. */
  Stream,
  /** Over a policy's limit: 413. */
  TooLarge,
}

export class HeldBody {
  readonly #chunks: Uint8Array[] = []
  /** Body (and anything pipelined behind it) bytes received so far. */
  #bytes = 0
  /** Of those, the bytes counted in the process's total (and heldTotal): all of them until the total was reached. */
  #counted = 0
  /** Payload bytes the body needs (Content-Length), or -1 for chunked. */
  readonly #needed: number
  readonly #decoder: ChunkedDecoder | undefined
  /** Chunked: payload bytes decoded so far (the limit counts payload, as the exchange does). */
  #payload = 0

  private constructor(
    readonly head: RequestHead,
    /** The head's bytes as received (the inner path forwards them unchanged). */
    readonly headBytes: Uint8Array,
    readonly limit: number,
    /** A policy set the limit: over it is 413, not streaming. */
    readonly strict: boolean,
    readonly totalLimit: number,
    readonly gauges: ProcessGauges,
  ) {
    this.#needed = head.chunked ? -1 : head.contentLength
    this.#decoder = head.chunked ? new ChunkedDecoder(true) : undefined
  }

  /**
   * Start holding this request's body, or say why not: undefined when it is not held (no body,
   * already complete, too large to hold by default, an Expect or Upgrade exchange).
   */
  static start(head: RequestHead, headBytes: Uint8Array, rest: Uint8Array | undefined, policyLimit: number | undefined, defaultLimit: number, totalLimit: number, maxBody: number, gauges: ProcessGauges): HeldBody | HoldResult.TooLarge | undefined {
    if (!head.chunked && head.contentLength <= 0) return undefined
    // A client waiting for 100 Continue sends nothing until answered; an upgrade has no body to hold.
    if (head.expect || head.upgrade) return undefined
    // Over the body limit: the exchange refuses it at once (413), nothing to wait for.
    if (maxBody > 0 && head.contentLength > maxBody) return undefined
    // A chunked body of unknown length may be a deliberate stream (events, a long upload): held
    // only where a policy asks for it; by default only bodies whose whole length is announced.
    if (head.chunked && policyLimit === undefined) return undefined
    let limit = policyLimit ?? defaultLimit
    if (limit <= 0) return undefined
    // A chunked body past the body limit streams into the exchange's own 413 as soon as it is.
    if (maxBody > 0 && maxBody < limit) limit = maxBody
    if (!head.chunked) {
      if (head.contentLength > limit) return policyLimit !== undefined ? HoldResult.TooLarge : undefined
      if ((rest?.byteLength ?? 0) >= head.contentLength) return undefined
    }
    const held = new HeldBody(head, headBytes, limit, policyLimit !== undefined, totalLimit, gauges)
    if (rest && rest.byteLength > 0) {
      const result = held.add(rest)
      if (result === HoldResult.TooLarge) {
        held.release()
        return result
      }
      if (result !== HoldResult.More) {
        held.release()
        return undefined
      }
    }
    return held
  }

  /** More bytes from the client. */
  add(data: Uint8Array): HoldResult {
    this.#chunks.push(data)
    this.#bytes += data.byteLength
    // Counted only while the process's total allows it; past it the body streams (below).
    const within = this.gauges.hold(data.byteLength, this.totalLimit)
    if (within) {
      this.#counted += data.byteLength
      heldTotal += data.byteLength
    }
    if (this.#needed >= 0) {
      if (this.#bytes >= this.#needed) return HoldResult.Complete
    } else {
      try {
        payload = 0
        this.#decoder!.decode(data, 0, COUNT)
        this.#payload += payload
      } catch (err) {
        if (!(err instanceof ChunkedDecodeError)) throw err
        // The exchange's own decoder refuses it with 400.
        return HoldResult.Complete
      }
      if (this.#decoder!.done) return HoldResult.Complete
      if (this.#payload > this.limit) return this.strict ? HoldResult.TooLarge : HoldResult.Stream
      // Chunk framing is held too: a body of 1-byte chunks is bounded by its bytes, not its payload.
      if (this.#bytes > 2 * this.limit + 1024) return HoldResult.Stream
    }
    // Past the process's total even a policy's body streams: memory first (the limit still applies: the exchange counts it).
    if (!within) return HoldResult.Stream
    return HoldResult.More
  }

  /** Everything received after the head, in one buffer; the hold's bytes are released. */
  take(): Uint8Array {
    const out = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks)
    this.release()
    return out
  }

  /** Give the held bytes back to the process's total (the connection closed, or the body goes on). */
  release(): void {
    this.gauges.unhold(this.#counted)
    heldTotal -= this.#counted
    this.#counted = 0
    this.#bytes = 0
    this.#chunks.length = 0
  }
}

/** Payload bytes of the chunks decoded last (a module-level counter: no closure per call). */
let payload = 0
const COUNT = (slice: Uint8Array) => {
  payload += slice.byteLength
}
