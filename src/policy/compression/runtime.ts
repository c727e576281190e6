/**
 * `compression`: a response-phase feature. It needs the response head and rewrites the body, so
 * it is not head-only: a rule with compression leaves the front's direct path and goes through
 * the Bun.serve pipeline (its cost on small GET: bench/http.ts POLICIES=compression).
 *
 * Per response (wrapResponseBody, after the response-head hooks of the chain):
 *  1. left alone: HEAD, 1xx/204/304, 206 or Content-Range, an existing Content-Encoding,
 *     `Cache-Control: no-transform`, a type that does not compress (negotiate.ts), or a known
 *     Content-Length below every encoding's minimum;
 *  2. otherwise the response varies by Accept-Encoding (Vary added, whatever the client sent);
 *  3. the client's Accept-Encoding picks the encoding (q-values, ties to the configured order);
 *     none acceptable: identity;
 *  4. compressing: Content-Encoding set, Content-Length and Accept-Ranges dropped, a strong
 *     ETag made weak, the body encoded (codecs.ts: one call when it arrived whole, sent with the
 *     new length; else flushed chunk by chunk, sent chunked).
 */
import type { PolicyRuntime } from '../runtime.ts'
import { available, codec, compressBody } from './codecs.ts'
import { ineligible, negotiate, varyWithAcceptEncoding, weakETag, type Coding } from './negotiate.ts'

export const compressionRuntime: PolicyRuntime<'compression'> = {
  name: 'compression',
  phase: 'response',
  order: 100,
  compile(ir) {
    const entries = ir.spec.encodings.filter((e) => available(e.type))
    const codecs = entries.map((e) => codec(e.type, e.level))
    const offered: readonly Coding[] = codecs.map((c) => c.coding)
    const minimums = entries.map((e) => e.minContentLength)
    const smallest = Math.min(...minimums)
    const uniform = minimums.every((m) => m === smallest)
    // Clients send the same few Accept-Encoding strings over and over: remember the last answer.
    let lastAccept: string | null = null
    let lastChoice: Coding | undefined
    const choose = (accept: string | null): Coding | undefined => {
      if (accept === lastAccept) return lastChoice
      lastChoice = negotiate(accept, offered)
      lastAccept = accept
      return lastChoice
    }
    return {
      headOnly: false,
      wrapResponseBody(res, req, current) {
        if (codecs.length === 0) return undefined
        const headers = res.headers
        if (ineligible(req.method, res.status, headers, smallest) !== undefined) return undefined
        const vary = varyWithAcceptEncoding(headers.get('vary'))
        if (vary !== undefined) headers.set('vary', vary)
        const lengthField = headers.get('content-length')
        const length = lengthField === null ? undefined : Number(lengthField)
        const accept = req.header('accept-encoding')
        // Encodings with different minimums: only those this length satisfies take part.
        const coding = uniform || length === undefined ? choose(accept) : negotiate(accept, offered.filter((_, i) => length >= minimums[i]!))
        if (coding === undefined) return undefined
        const body = current()
        if (body === null) return undefined
        const chosen = codecs[offered.indexOf(coding)]!
        headers.set('content-encoding', coding)
        headers.delete('content-length')
        headers.delete('accept-ranges')
        const etag = headers.get('etag')
        if (etag !== null) headers.set('etag', weakETag(etag))
        return compressBody(body, chosen, length !== undefined && Number.isFinite(length) ? length : undefined)
      },
    }
  },
}
