/**
 * `oidc`: browser login with the authorization-code flow (PKCE S256, state, nonce).
 *  - A request with a live session goes on: the session cookie is removed from it, the ID
 *    token's claims set as headers (claimToHeaders), the access token as Authorization with
 *    forwardAccessToken. Shortly before the access token expires the refresh token is used.
 *  - Without one: a browser (Accept: text/html) gets a 302 to the provider's authorization
 *    endpoint (state, nonce and the PKCE verifier travel in a sealed, short-lived cookie); any
 *    other client a 401.
 *  - The redirectURL's path is the callback: state checked, the code exchanged at the token
 *    endpoint (client_secret_basic, code_verifier), the ID token verified (jose: provider JWKS,
 *    issuer, audience = clientID, nonce), a session made, 302 back to the page first asked for.
 *  - logoutPath ends the session (Redis: deleted) and sends the browser to the provider's
 *    end_session_endpoint (or postLogoutRedirectURI, or "/").
 * Discovery and the provider's keys are fetched off the request path when the policy loads
 * (requests wait for the first fetch). Sessions: session.ts. Always asynchronous: the pipeline.
 */
import { createHash, randomBytes } from 'node:crypto'
import { jwtVerify } from 'jose'
import type { LocalReply, PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'
import { claimValue, JWT_ALGORITHMS } from '../auth-jwt/runtime.ts'
import { RemoteKeySet } from '../auth-jwt/jwks.ts'
import { cookieValue, queryParam, unauthorized, withoutCookie } from '../security/request.ts'
import { Sealer, sessionStore, type Session, type SessionStore } from './session.ts'
import type { OidcSpec } from './spec.ts'

const CHALLENGE = unauthorized('Bearer realm="portico"')
const UNAVAILABLE: LocalReply = { status: 503, headers: [['retry-after', '5']], body: 'login provider unavailable\n' }
const LOGIN_FAILED: LocalReply = { status: 401, body: 'login failed\n' }
const FETCH_TIMEOUT_MS = 5000
const STATE_TTL_S = 600
/** Refresh this long before the access token expires. */
const REFRESH_EARLY_MS = 60_000

interface Provider {
  readonly authorizationEndpoint: string
  readonly tokenEndpoint: string
  readonly endSessionEndpoint?: string
  readonly keys: RemoteKeySet
}

interface State {
  /** Discovery per issuer (kept across snapshot swaps). */
  discovery?: { readonly key: string; promise: Promise<Provider | undefined>; value?: Provider; at: number }
}

interface LoginState {
  readonly s: string
  readonly n: string
  readonly v: string
  readonly r: string
  readonly t: number
}

const refreshed = new WeakMap<PolicyRequest, string[]>()

export const oidcRuntime: PolicyRuntime<'oidc'> = {
  name: 'oidc',
  phase: 'authn',
  order: 40,
  compile(ir, ctx) {
    const spec = ir.spec
    const state = ctx.state.obtain<State>(ir.id, () => ({}))
    const suffix = createHash('sha256').update(`${spec.issuer}|${spec.clientID}`).digest('hex').slice(0, 8)
    const sessionCookie = `portico-session-${suffix}`
    const stateCookie = `portico-login-${suffix}`
    const sealer = new Sealer(spec.clientSecret, `${spec.issuer}|${spec.clientID}`)
    let store: SessionStore | undefined
    const sessions = () => (store ??= sessionStore(sealer, suffix))
    const redirect = new URL(spec.redirectURL)
    const secure = redirect.protocol === 'https:'
    const attributes = `Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}${spec.cookieDomain ? `; Domain=${spec.cookieDomain}` : ''}`
    const setCookie = (name: string, value: string, maxAge?: number) => `${name}=${value}; ${attributes}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`
    const clearCookie = (name: string) => `${name}=; ${attributes}; Max-Age=0`
    const scopes = [...new Set(['openid', ...spec.scopes])].join(' ')
    const basic = `Basic ${Buffer.from(`${encodeURIComponent(spec.clientID)}:${encodeURIComponent(spec.clientSecret)}`).toString('base64')}`

    const discover = (): Promise<Provider | undefined> => {
      const now = Date.now()
      const d = state.discovery
      if (d && d.key === spec.issuer && (d.value || now - d.at < 5000)) return d.value ? Promise.resolve(d.value) : d.promise
      const promise: Promise<Provider | undefined> = discovery(spec).then((p) => {
        const current = state.discovery
        if (p && current?.promise === promise) current.value = p
        return p ?? current?.value
      })
      state.discovery = { key: spec.issuer, promise, at: now, ...(d?.key === spec.issuer && d.value ? { value: d.value } : {}) }
      return promise
    }
    void discover()

    const token = async (p: Provider, params: Record<string, string>): Promise<Record<string, unknown> | undefined> => {
      try {
        const res = await fetch(p.tokenEndpoint, {
          method: 'POST',
          headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams(params).toString(),
          signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
        })
        if (!res.ok) return undefined
        return (await res.json()) as Record<string, unknown>
      } catch {
        return undefined
      }
    }

    /** A session from a token endpoint answer (the ID token verified; nonce checked when given). */
    const sessionFrom = async (p: Provider, answer: Record<string, unknown>, nonce: string | undefined, previous?: Session): Promise<Session | undefined> => {
      const accessToken = typeof answer.access_token === 'string' ? answer.access_token : undefined
      if (!accessToken) return undefined
      let claims = previous?.claims
      const idToken = typeof answer.id_token === 'string' ? answer.id_token : previous?.idToken
      if (typeof answer.id_token === 'string') {
        if (!p.keys.getKey) await p.keys.refresh(false)
        if (!p.keys.getKey) return undefined
        try {
          const { payload } = await jwtVerify(answer.id_token, p.keys.getKey, { issuer: spec.issuer, audience: spec.clientID, algorithms: JWT_ALGORITHMS, clockTolerance: 30 })
          if (nonce !== undefined && payload.nonce !== nonce) return undefined
          claims = payload as Record<string, unknown>
        } catch {
          return undefined
        }
      }
      if (!claims) return undefined
      const expiresIn = typeof answer.expires_in === 'number' ? answer.expires_in : 3600
      const refreshToken = typeof answer.refresh_token === 'string' ? answer.refresh_token : previous?.refreshToken
      return { claims, accessToken, expiresAt: Date.now() + expiresIn * 1000, ...(refreshToken ? { refreshToken } : {}), ...(idToken ? { idToken } : {}) }
    }

    const login = (req: PolicyRequest, p: Provider): Verdict => {
      const login: LoginState = { s: random(16), n: random(16), v: random(32), r: req.path + req.query, t: Date.now() }
      const url = new URL(p.authorizationEndpoint)
      url.searchParams.set('response_type', 'code')
      url.searchParams.set('client_id', spec.clientID)
      url.searchParams.set('redirect_uri', spec.redirectURL)
      url.searchParams.set('scope', scopes)
      url.searchParams.set('state', login.s)
      url.searchParams.set('nonce', login.n)
      url.searchParams.set('code_challenge', createHash('sha256').update(login.v).digest('base64url'))
      url.searchParams.set('code_challenge_method', 'S256')
      return { status: 302, headers: [['location', url.toString()], ['set-cookie', setCookie(stateCookie, sealer.seal(login), STATE_TTL_S)], ['cache-control', 'no-store']] }
    }

    const callback = async (req: PolicyRequest, p: Provider): Promise<Verdict> => {
      const saved = sealer.open<LoginState>(cookieValue(req.header('cookie'), stateCookie) ?? '')
      const code = queryParam(req.query, 'code')
      if (!saved || !code || queryParam(req.query, 'state') !== saved.s || Date.now() - saved.t > STATE_TTL_S * 1000) return LOGIN_FAILED
      const answer = await token(p, { grant_type: 'authorization_code', code, redirect_uri: spec.redirectURL, code_verifier: saved.v })
      const session = answer && (await sessionFrom(p, answer, saved.n))
      if (!session) return LOGIN_FAILED
      let cookie: string
      try {
        cookie = await sessions().save(session)
      } catch {
        return UNAVAILABLE
      }
      const back = saved.r.startsWith('/') && !saved.r.startsWith('//') ? saved.r : '/'
      return {
        status: 302,
        headers: [['location', back], ['set-cookie', setCookie(sessionCookie, cookie)], ['set-cookie', clearCookie(stateCookie)], ['cache-control', 'no-store']],
      }
    }

    const logout = async (req: PolicyRequest, p: Provider, cookie: string | undefined): Promise<Verdict> => {
      const session = cookie ? await sessions().load(cookie).catch(() => undefined) : undefined
      if (cookie) await sessions().remove(cookie).catch(() => {})
      let location = spec.postLogoutRedirectURI ?? '/'
      if (p.endSessionEndpoint) {
        const url = new URL(p.endSessionEndpoint)
        url.searchParams.set('client_id', spec.clientID)
        if (session?.idToken) url.searchParams.set('id_token_hint', session.idToken)
        if (spec.postLogoutRedirectURI) url.searchParams.set('post_logout_redirect_uri', spec.postLogoutRedirectURI)
        location = url.toString()
      }
      return { status: 302, headers: [['location', location], ['set-cookie', clearCookie(sessionCookie)], ['cache-control', 'no-store']] }
    }

    return {
      headOnly: false,
      async onRequest(req): Promise<Verdict> {
        const p = await discover()
        if (!p) return UNAVAILABLE
        if (req.path === redirect.pathname) return callback(req, p)
        const cookie = cookieValue(req.header('cookie'), sessionCookie)
        if (req.path === spec.logoutPath) return logout(req, p, cookie)
        let session: Session | undefined
        if (cookie) {
          try {
            session = await sessions().load(cookie)
          } catch {
            return UNAVAILABLE
          }
        }
        const now = Date.now()
        if (session && spec.refreshToken && session.refreshToken && session.expiresAt - REFRESH_EARLY_MS < now) {
          const answer = await token(p, { grant_type: 'refresh_token', refresh_token: session.refreshToken })
          const renewed = answer && (await sessionFrom(p, answer, undefined, session))
          if (renewed) {
            session = renewed
            const value = await sessions().save(renewed, cookie).catch(() => undefined)
            if (value) refreshed.set(req, [setCookie(sessionCookie, value)])
          }
        }
        if (!session || session.expiresAt <= now) {
          const accept = req.header('accept') ?? ''
          return accept.includes('text/html') && (req.method === 'GET' || req.method === 'HEAD') ? login(req, p) : CHALLENGE
        }
        const rest = withoutCookie(req.header('cookie') ?? '', sessionCookie)
        if (rest === '') req.removeUpstreamHeader('cookie')
        else req.setUpstreamHeader('cookie', rest)
        for (const c of spec.claimToHeaders) {
          const v = claimValue(session.claims, c.claim)
          if (v === undefined) req.removeUpstreamHeader(c.header)
          else req.setUpstreamHeader(c.header, typeof v === 'string' ? v : JSON.stringify(v))
        }
        if (spec.forwardAccessToken) req.setUpstreamHeader('authorization', `Bearer ${session.accessToken}`)
        return undefined
      },
      onResponseHead(res, req) {
        for (const c of refreshed.get(req) ?? []) res.headers.append('set-cookie', c)
      },
    }
  },
}

function random(bytes: number): string {
  return randomBytes(bytes).toString('base64url')
}

async function discovery(spec: OidcSpec): Promise<Provider | undefined> {
  try {
    const res = await fetch(`${spec.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } })
    if (!res.ok) return undefined
    const doc = (await res.json()) as Record<string, unknown>
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
    const authorizationEndpoint = spec.authorizationEndpoint ?? str(doc.authorization_endpoint)
    const tokenEndpoint = spec.tokenEndpoint ?? str(doc.token_endpoint)
    const jwksUri = str(doc.jwks_uri)
    if (!authorizationEndpoint || !tokenEndpoint || !jwksUri) return undefined
    const keys = new RemoteKeySet(jwksUri, 300_000)
    void keys.refresh(false)
    const endSessionEndpoint = str(doc.end_session_endpoint)
    return { authorizationEndpoint, tokenEndpoint, keys, ...(endSessionEndpoint ? { endSessionEndpoint } : {}) }
  } catch {
    return undefined
  }
}
