/**
 * `jwt`: bearer tokens verified with `jose` against each provider's key set (jwks.ts).
 *  - Asymmetric algorithms only (RS*, PS*, ES256/384, EdDSA): `alg: none` and HMAC signed with
 *    a public key are refused, as are keys of another type than the header names.
 *  - iss and aud checked when configured; exp and nbf with 30 s of leeway.
 *  - A verified token is cached (per policy, across snapshot swaps) until it expires or its
 *    provider's keys change: a cached token answers synchronously on the front's direct path.
 *    A new token returns a promise (verification is asynchronous in WebCrypto), which the front's
 *    direct path awaits before it forwards; the next request with it answers synchronously.
 *  - Missing token: 401 (`optional`: passes). Invalid: 401 `WWW-Authenticate: Bearer`, no detail.
 *    No key set yet and none fetchable: 503.
 */
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose'
import type { LocalReply, PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'
import { BoundedCache, cookieValue, queryParam, setJwtClaims, unauthorized } from '../security/request.ts'
import { localKeySet, parseJwks, RemoteKeySet, type KeySet } from './jwks.ts'
import type { JwtProviderSpec } from './spec.ts'

export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA', 'Ed25519']
const LEEWAY_S = 30
const CHALLENGE = unauthorized('Bearer realm="portico"')
const NO_KEYS: LocalReply = { status: 503, headers: [['retry-after', '5']], body: 'authentication keys unavailable\n' }

interface Verified {
  readonly provider: Provider
  readonly claims: JWTPayload
  /** ms; Infinity without exp. */
  readonly expires: number
  /** The provider's settings and key set version it was checked under (fingerprint()). */
  readonly under: string
}

interface Provider {
  readonly spec: JwtProviderSpec
  readonly keys: KeySet
  readonly extract: (req: PolicyRequest) => string | undefined
  readonly memo: { version: string | undefined; fingerprint: string }
}

interface State {
  readonly remotes: Map<string, RemoteKeySet>
  /** Verified tokens, and refused ones with the fingerprint() they were refused under. */
  readonly verified: BoundedCache<string, Verified | string>
  readonly pending: Map<string, Promise<Verified | false | 'no-keys' | 'unknown-key'>>
}

export const jwtRuntime: PolicyRuntime<'jwt'> = {
  name: 'jwt',
  phase: 'authn',
  order: 30,
  compile(ir, ctx) {
    const state = ctx.state.obtain<State>(ir.id, () => ({ remotes: new Map(), verified: new BoundedCache(10_000), pending: new Map() }))
    const providers: Provider[] = ir.spec.providers.map((p) => ({ spec: p, keys: keySetOf(p, state), extract: extractor(p), memo: { version: undefined, fingerprint: '' } }))
    const optional = ir.spec.optional
    for (const p of providers) void p.keys.refresh(false)

    const accept = (req: PolicyRequest, v: Verified): Verdict => {
      setJwtClaims(req, v.provider.spec.name, v.claims)
      for (const c of v.provider.spec.claimToHeaders ?? []) {
        const value = claimValue(v.claims, c.claim)
        if (value !== undefined) req.setUpstreamHeader(c.header, typeof value === 'string' ? value : JSON.stringify(value))
        else req.removeUpstreamHeader(c.header)
      }
      return undefined
    }
    const settle = (req: PolicyRequest, v: Verified | false | 'no-keys' | 'unknown-key'): Verdict => (v === 'no-keys' ? NO_KEYS : v === false || v === 'unknown-key' ? CHALLENGE : accept(req, v))

    return {
      headOnly: true,
      onRequest(req) {
        const now = Date.now()
        let seen: string | undefined
        for (const p of providers) {
          const token = p.extract(req)
          if (token === undefined) continue
          seen = token
          p.keys.touch(now)
          const cached = state.verified.get(token)
          if (cached !== undefined) {
            const under = fingerprint(p)
            if (typeof cached === 'string') {
              if (cached === under) return CHALLENGE
            } else if (cached.under === under) {
              if (cached.expires + LEEWAY_S * 1000 > now) return accept(req, cached.provider === p ? cached : { ...cached, provider: p })
              state.verified.delete(token)
              return CHALLENGE
            }
          }
          if (p.spec.issuer !== undefined && providers.length > 1 && issuerOf(token) !== p.spec.issuer) continue
          let pending = state.pending.get(token)
          if (!pending) {
            const under = fingerprint(p)
            pending = verify(token, p)
            state.pending.set(token, pending)
            pending.then((v) => {
              state.pending.delete(token)
              if (v !== 'no-keys' && v !== 'unknown-key') state.verified.set(token, v === false ? under : v)
            })
          }
          return pending.then((v) => settle(req, v))
        }
        if (seen !== undefined) return CHALLENGE
        return optional ? undefined : CHALLENGE
      },
    }
  },
}

function keySetOf(p: JwtProviderSpec, state: State): KeySet {
  if (p.remoteJWKS) {
    const key = `${p.remoteJWKS.uri}|${p.remoteJWKS.cacheDurationMs}`
    let remote = state.remotes.get(key)
    if (!remote) state.remotes.set(key, (remote = new RemoteKeySet(p.remoteJWKS.uri, p.remoteJWKS.cacheDurationMs)))
    return remote
  }
  const set = parseJwks(p.localJWKS ?? '{"keys":[]}')
  return localKeySet(typeof set === 'string' ? { keys: [] } : set)
}

async function verify(token: string, p: Provider): Promise<Verified | false | 'no-keys' | 'unknown-key'> {
  let kid: string | undefined
  try {
    const header = decodeProtectedHeader(token)
    if (typeof header.alg !== 'string' || !JWT_ALGORITHMS.includes(header.alg)) return false
    kid = typeof header.kid === 'string' ? header.kid : undefined
  } catch {
    return false
  }
  // a key id we do not hold: the keys may have rotated
  if (!p.keys.getKey || !p.keys.has(kid)) await p.keys.refresh(true)
  const getKey = p.keys.getKey
  if (!getKey) return 'no-keys'
  // still unknown: refused, but not remembered (the key may be published later)
  if (!p.keys.has(kid)) return 'unknown-key'
  const under = fingerprint(p)
  try {
    const { payload } = await jwtVerify(token, getKey, {
      algorithms: JWT_ALGORITHMS,
      clockTolerance: LEEWAY_S,
      ...(p.spec.issuer !== undefined ? { issuer: p.spec.issuer } : {}),
      ...(p.spec.audiences?.length ? { audience: [...p.spec.audiences] } : {}),
    })
    return { provider: p, claims: payload, expires: typeof payload.exp === 'number' ? payload.exp * 1000 : Infinity, under }
  } catch {
    return false
  }
}

/** What a verification outcome depends on besides the token: provider settings and keys. */
function fingerprint(p: Provider): string {
  const version = p.keys.version
  if (p.memo.version !== version) {
    p.memo.version = version
    p.memo.fingerprint = `${p.spec.name}|${p.spec.issuer ?? ''}|${(p.spec.audiences ?? []).join(',')}|${version}`
  }
  return p.memo.fingerprint
}

function issuerOf(token: string): string | undefined {
  try {
    return decodeJwt(token).iss
  } catch {
    return undefined
  }
}

/** A claim by name; "a.b" reads nested objects (Envoy Gateway's convention). */
export function claimValue(claims: Record<string, unknown>, name: string): unknown {
  if (name in claims) return claims[name]
  let v: unknown = claims
  for (const part of name.split('.')) {
    if (!v || typeof v !== 'object') return undefined
    v = (v as Record<string, unknown>)[part]
  }
  return v
}

function extractor(p: JwtProviderSpec): (req: PolicyRequest) => string | undefined {
  const e = p.extractFrom
  const headers = e ? (e.headers ?? []).map((h) => ({ name: h.name.toLowerCase(), prefix: h.valuePrefix ?? '' })) : [{ name: 'authorization', prefix: 'Bearer ' }]
  const cookies = e?.cookies ?? []
  const params = e?.params ?? []
  return (req) => {
    for (const h of headers) {
      const v = req.header(h.name)
      if (v === null) continue
      if (h.prefix === '') return v.trim() || undefined
      if (v.length > h.prefix.length && v.slice(0, h.prefix.length).toLowerCase() === h.prefix.toLowerCase()) return v.slice(h.prefix.length).trim() || undefined
    }
    if (cookies.length) {
      const header = req.header('cookie')
      for (const c of cookies) {
        const v = cookieValue(header, c)
        if (v) return v
      }
    }
    for (const name of params) {
      const v = queryParam(req.query, name)
      if (v) return v
    }
    return undefined
  }
}
