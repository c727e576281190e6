/**
 * `jwtCredentials` (credentials-spec.ts): Kong's jwt plugin. The token comes from the listed
 * headers (Bearer), query parameters or cookies; its key claim picks the credential, whose
 * algorithm must be the token's; the signature is checked with the credential's secret or
 * public key (jose), then the claims Kong was told to verify. Refusals are Kong's (401 JSON).
 * A verified token is cached per policy (across snapshot swaps), so the next request with it
 * answers synchronously on the front's direct path; the first one returns a promise.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import type { PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'
import { authenticateConsumer, kongError } from '../consumer/identity.ts'
import { BoundedCache, cookieValue, principalOf, queryParam } from '../security/request.ts'
import type { JwtCredential } from './credentials-spec.ts'

type Outcome = { readonly ok: true; readonly credential: JwtCredential; readonly exp?: number } | { readonly ok: false; readonly status: number; readonly message: string; readonly body?: Record<string, string> }

export const jwtCredentialsRuntime: PolicyRuntime<'jwtCredentials'> = {
  name: 'jwtCredentials',
  phase: 'authn',
  // Kong: jwt (1450) runs before key-auth (1250) and basic-auth (1100)
  order: 5,
  compile(ir, ctx) {
    const spec = ir.spec
    const byKey = new Map(spec.credentials.map((c) => [c.key, c]))
    const keys = new Map<JwtCredential, Uint8Array | KeyObject | undefined>()
    const keyOf = (c: JwtCredential) => {
      if (!keys.has(c)) {
        let k: Uint8Array | KeyObject | undefined
        try {
          k = c.algorithm.startsWith('HS') ? (c.secretIsBase64 ? Buffer.from(c.secret ?? '', 'base64') : new TextEncoder().encode(c.secret ?? '')) : createPublicKey(c.publicKeyPem ?? '')
        } catch {
          k = undefined
        }
        keys.set(c, k)
      }
      return keys.get(c)
    }
    // the cache key includes the credential set, so a changed or removed credential is rechecked
    const generation = Bun.hash(JSON.stringify(spec.credentials.map((c) => [c.key, c.algorithm, c.secret, c.publicKeyPem]))).toString(36)
    const state = ctx.state.obtain(ir.id, () => ({ verified: new BoundedCache<string, { gen: string; credential: JwtCredential; exp?: number }>(10_000) }))

    const tokenOf = (req: PolicyRequest): string[] => {
      const found: string[] = []
      for (const p of spec.params) {
        const v = queryParam(req.query, p)
        if (v) found.push(v)
      }
      for (const c of spec.cookies) {
        const v = cookieValue(req.header('cookie'), c)
        if (v) found.push(v)
      }
      for (const h of spec.headers) {
        const v = req.header(h)
        if (!v) continue
        const m = /^\s*Bearer\s+(.+)$/i.exec(v)
        found.push((m ? m[1]! : v).trim())
      }
      return [...new Set(found)]
    }

    const accept = (req: PolicyRequest, c: JwtCredential): Verdict => {
      authenticateConsumer(req, c.consumer)
      return undefined
    }
    const refuse = (req: PolicyRequest, o: Extract<Outcome, { ok: false }>): Verdict => {
      if (spec.anonymous) {
        authenticateConsumer(req, spec.anonymous)
        return undefined
      }
      if (o.body) return { status: o.status, headers: [['content-type', 'application/json; charset=utf-8']], body: `${JSON.stringify(o.body)}\n` }
      return kongError(req, o.status, o.message)
    }

    const claimsProblem = (exp: number | undefined, nbf: number | undefined): Record<string, string> | undefined => {
      const now = Date.now() / 1000
      const errors: Record<string, string> = {}
      if (spec.claimsToVerify.includes('exp')) {
        if (typeof exp !== 'number') errors.exp = 'must be a number'
        else if (exp <= now) errors.exp = 'token expired'
        else if (spec.maximumExpiration > 0 && exp - now > spec.maximumExpiration) errors.exp = 'exceeds maximum allowed expiration'
      }
      if (spec.claimsToVerify.includes('nbf')) {
        if (typeof nbf !== 'number') errors.nbf = 'must be a number'
        else if (nbf > now) errors.nbf = 'token not valid yet'
      }
      return Object.keys(errors).length ? errors : undefined
    }

    const verify = async (token: string): Promise<Outcome> => {
      let claims: Record<string, unknown>
      let alg: unknown
      try {
        claims = decodeJwt(token)
        alg = decodeProtectedHeader(token).alg
      } catch (e) {
        return { ok: false, status: 401, message: `Bad token; ${e instanceof Error ? e.message : 'invalid JWT'}` }
      }
      const keyValue = claims[spec.keyClaim]
      if (keyValue === undefined) return { ok: false, status: 401, message: `No mandatory '${spec.keyClaim}' in claims` }
      if (typeof keyValue !== 'string' || keyValue === '') return { ok: false, status: 401, message: `Invalid '${spec.keyClaim}' in claims` }
      const c = byKey.get(keyValue)
      if (!c) return { ok: false, status: 401, message: `No credentials found for given '${spec.keyClaim}'` }
      if (alg !== c.algorithm) return { ok: false, status: 401, message: 'Invalid algorithm' }
      const key = keyOf(c)
      if (!key) return { ok: false, status: 401, message: 'Invalid key/secret' }
      try {
        // signature only: Kong checks exp and nbf only when told to (below)
        await jwtVerify(token, key, { algorithms: [c.algorithm], clockTolerance: Number.MAX_SAFE_INTEGER })
      } catch {
        return { ok: false, status: 401, message: 'Invalid signature' }
      }
      const errors = claimsProblem(claims.exp as number | undefined, claims.nbf as number | undefined)
      if (errors) return { ok: false, status: 401, message: 'Unauthorized', body: errors }
      return { ok: true, credential: c, ...(typeof claims.exp === 'number' ? { exp: claims.exp } : {}) }
    }

    return {
      headOnly: true,
      onRequest(req) {
        if (spec.skipPreflight && req.method === 'OPTIONS') return undefined
        if (spec.anonymous) {
          const known = principalOf(req)?.consumer
          if (known && !known.anonymous) return undefined
        }
        const tokens = tokenOf(req)
        if (tokens.length === 0) return refuse(req, { ok: false, status: 401, message: 'Unauthorized' })
        if (tokens.length > 1) return refuse(req, { ok: false, status: 401, message: 'Multiple tokens provided' })
        const token = tokens[0]!
        const cached = state.verified.get(token)
        const expired = (exp: number | undefined) => spec.claimsToVerify.includes('exp') && (exp ?? 0) <= Date.now() / 1000
        if (cached && cached.gen === generation && !expired(cached.exp)) return accept(req, cached.credential)
        return verify(token).then((o) => {
          if (!o.ok) return refuse(req, o)
          // a token checked for nbf is not cached (only exp is rechecked on a cache hit)
          if (!spec.claimsToVerify.includes('nbf')) state.verified.set(token, { gen: generation, credential: o.credential, ...(o.exp !== undefined ? { exp: o.exp } : {}) })
          return accept(req, o.credential)
        })
      },
    }
  },
}
