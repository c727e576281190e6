/**
 * `apiKeyAuth`: the presented key's SHA-256 is looked up among the configured ones and
 * compared in constant time; no key or an unknown one is 401 `WWW-Authenticate: API-Key`.
 * Synchronous and head-only: the rule keeps the front's direct path.
 */
import type { PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'
import { authenticateConsumer, kongError, type ConsumerIdentity } from '../consumer/identity.ts'
import { cookieValue, principalOf, queryParam, unauthorized, withoutCookie } from '../security/request.ts'
import type { ApiKeyAuthSpec } from './spec.ts'

const CHALLENGE = unauthorized('API-Key realm="portico"')

type Found = { readonly key: string; readonly header?: string; readonly cookie?: string }

export const apiKeyAuthRuntime: PolicyRuntime<'apiKeyAuth'> = {
  name: 'apiKeyAuth',
  phase: 'authn',
  order: 10,
  compile(ir) {
    const spec = ir.spec
    const byHash = new Map<string, { clientID: string; sha256: string; consumer?: ConsumerIdentity }>()
    for (const c of spec.credentials) byHash.set(c.sha256, c)
    const extract = extractor(spec)
    const forward = spec.forwardClientIDHeader
    const sanitize = spec.sanitize
    const kong = spec.errorStyle === 'kong'
    const anonymous = spec.anonymous
    // Kong: a missing key is answered with the scheme's challenge, an unknown one without
    const refuse = (req: PolicyRequest, missing: boolean): Verdict => {
      if (anonymous) {
        authenticateConsumer(req, anonymous)
        return undefined
      }
      if (!kong) return CHALLENGE
      return missing ? kongError(req, 401, 'No API key found in request', [['www-authenticate', 'Key realm="kong"']]) : kongError(req, 401, 'Invalid authentication credentials')
    }
    return {
      headOnly: true,
      onRequest(req: PolicyRequest): Verdict {
        if (spec.skipPreflight && req.method === 'OPTIONS') return undefined
        // with an anonymous fallback, auth plugins are OR-ed: one credential is enough
        if (anonymous) {
          const known = principalOf(req)?.consumer
          if (known && !known.anonymous) return undefined
        }
        const found = extract(req)
        if (!found) return refuse(req, true)
        const digest = Bun.SHA256.hash(found.key, 'base64')
        const hit = byHash.get(digest)
        if (!hit || !sameDigest(hit.sha256, digest)) return refuse(req, false)
        if (sanitize) {
          if (found.header) req.removeUpstreamHeader(found.header)
          if (found.cookie) {
            const rest = withoutCookie(req.header('cookie') ?? '', found.cookie)
            if (rest === '') req.removeUpstreamHeader('cookie')
            else req.setUpstreamHeader('cookie', rest)
          }
        }
        if (forward) req.setUpstreamHeader(forward, hit.clientID)
        if (hit.consumer) authenticateConsumer(req, hit.consumer)
        return undefined
      },
    }
  },
}

function extractor(spec: ApiKeyAuthSpec): (req: PolicyRequest) => Found | undefined {
  const sources = spec.extractFrom.map((s) => ({
    headers: (s.headers ?? []).map((h) => h.toLowerCase()),
    params: s.params ?? [],
    cookies: s.cookies ?? [],
  }))
  return (req) => {
    for (const s of sources) {
      for (const h of s.headers) {
        const v = req.header(h)
        if (v !== null && v !== '') return { key: v, header: h }
      }
      for (const p of s.params) {
        const v = queryParam(req.query, p)
        if (v) return { key: v }
      }
      if (s.cookies.length) {
        const header = req.header('cookie')
        for (const c of s.cookies) {
          const v = cookieValue(header, c)
          if (v) return { key: v, cookie: c }
        }
      }
    }
    return undefined
  }
}

/** Constant-time comparison of two digests (base64 of SHA-256: equal lengths). */
function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}
