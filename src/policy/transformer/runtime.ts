/**
 * `requestTransform` and `responseTransform` (spec.ts). They edit the upstream request's fields
 * and query, and the response head, so they run on the pipeline (not head-only), in the transform
 * phase after authentication and rate limits (Kong: request-transformer 801, response-transformer
 * 800). Fields the proxy owns (Host, framing, X-Forwarded-*) are left alone.
 */
import { PROXY_OWNED_FIELDS, type PolicyRequest, type PolicyRuntime } from '../runtime.ts'
import type { TransformSet } from './spec.ts'

/** The pipeline's request (dataplane/http/context.ts RequestState) as far as these runtimes edit it. */
interface EditableRequest extends PolicyRequest {
  readonly upstreamHeaders: Headers
  path: string
  query: string
}

/** Applies a TransformSet to something with get/has/set/delete/append (Headers, URLSearchParams). */
interface Fields {
  get(name: string): string | null
  has(name: string): boolean
  set(name: string, value: string): void
  delete(name: string): void
  append(name: string, value: string): void
}

function apply(t: TransformSet, f: Fields, owned: (name: string) => boolean): void {
  for (const n of t.remove) if (!owned(n)) f.delete(n)
  for (const [from, to] of t.rename) {
    if (owned(from) || owned(to)) continue
    const v = f.get(from)
    if (v === null) continue
    f.delete(from)
    f.set(to, v)
  }
  for (const [n, v] of t.replace) if (!owned(n) && f.has(n)) f.set(n, v)
  for (const [n, v] of t.add) if (!owned(n) && !f.has(n)) f.set(n, v)
  for (const [n, v] of t.append) if (!owned(n)) f.append(n, v)
}

const isOwned = (name: string) => PROXY_OWNED_FIELDS.has(name.toLowerCase())
const never = () => false
const isEmpty = (t: TransformSet) => !t.remove.length && !t.rename.length && !t.replace.length && !t.add.length && !t.append.length

export const requestTransformRuntime: PolicyRuntime<'requestTransform'> = {
  name: 'requestTransform',
  phase: 'transform',
  order: -2,
  compile(ir) {
    const { headers, query, path } = ir.spec
    const editQuery = !isEmpty(query)
    return {
      headOnly: false,
      onRequest(req) {
        const r = req as EditableRequest
        apply(headers, r.upstreamHeaders, isOwned)
        if (editQuery) {
          const params = new URLSearchParams(r.query)
          apply(query, params, never)
          const q = params.toString()
          r.query = q === '' ? '' : `?${q}`
        }
        if (path !== undefined) r.path = path
        return undefined
      },
    }
  },
}

export const responseTransformRuntime: PolicyRuntime<'responseTransform'> = {
  name: 'responseTransform',
  phase: 'response',
  order: 0,
  compile(ir) {
    const headers = ir.spec.headers
    return {
      headOnly: false,
      onResponseHead(res) {
        apply(headers, res.headers, isOwned)
      },
    }
  },
}
