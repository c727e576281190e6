/**
 * `basicAuth`: `Authorization: Basic` checked against htpasswd entries; 401
 * `WWW-Authenticate: Basic realm="portico"` otherwise.
 *
 * {SHA} entries are checked synchronously. bcrypt is slow on purpose (tens of ms at cost 10), so
 * it runs off the event loop (Bun.password.verify) and its outcome is cached by the SHA-256 of
 * the presented header (with the entry's hash, so a changed password invalidates it): the first
 * request of a credential returns a promise (awaited on whichever path serves the rule, the
 * front's direct path included), every later one answers synchronously. The cache lives in policy
 * state, so snapshot swaps keep it.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'
import { BoundedCache, principalOf, unauthorized } from '../security/request.ts'
import { authenticateConsumer, kongError } from '../consumer/identity.ts'

const CHALLENGE = unauthorized('Basic realm="portico", charset="UTF-8"')

interface State {
  /** sha256(header) → the entry hash it was checked against and the outcome. */
  readonly verified: BoundedCache<string, { readonly hash: string; readonly ok: boolean }>
  readonly pending: Map<string, Promise<boolean>>
}

export const basicAuthRuntime: PolicyRuntime<'basicAuth'> = {
  name: 'basicAuth',
  phase: 'authn',
  order: 20,
  compile(ir, ctx) {
    const users = new Map(ir.spec.htpasswd.map((e) => [e.user, e.hash]))
    const decoy = ir.spec.htpasswd.find((e) => e.hash.startsWith('$2'))?.hash
    const forward = ir.spec.forwardUsernameHeader
    const state = ctx.state.obtain<State>(ir.id, () => ({ verified: new BoundedCache(10_000), pending: new Map() }))
    const consumers = ir.spec.consumers
    const anonymous = ir.spec.anonymous
    const kong = ir.spec.errorStyle === 'kong'
    const accept = (req: PolicyRequest, user: string): Verdict => {
      if (forward) req.setUpstreamHeader(forward, user)
      if (ir.spec.hideCredentials) req.removeUpstreamHeader('authorization')
      const consumer = consumers?.[user]
      if (consumer) authenticateConsumer(req, consumer)
      return undefined
    }
    const refused = (req: PolicyRequest): Verdict => {
      if (anonymous) {
        authenticateConsumer(req, anonymous)
        return undefined
      }
      return kong ? kongError(req, 401, 'Unauthorized', [['www-authenticate', 'Basic realm="service"']]) : CHALLENGE
    }
    const check = (req: PolicyRequest): Verdict | Promise<Verdict> => {
      const v = verify(req)
      if (v === CHALLENGE) return refused(req)
      if (v instanceof Promise) return v.then((x) => (x === CHALLENGE ? refused(req) : x))
      return v
    }
    const verify = (req: PolicyRequest): Verdict | Promise<Verdict> => {
        const header = req.header('authorization')
        if (header === null || header.length < 7 || header.slice(0, 6).toLowerCase() !== 'basic ') return CHALLENGE
        const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
        const colon = decoded.indexOf(':')
        if (colon < 0) return CHALLENGE
        const user = decoded.slice(0, colon)
        const password = decoded.slice(colon + 1)
        const hash = users.get(user)
        if (hash !== undefined && hash.startsWith('{SHA}')) {
          const want = Buffer.from(hash.slice(5), 'base64')
          const got = createHash('sha1').update(password).digest()
          return want.length === got.length && timingSafeEqual(want, got) ? accept(req, user) : CHALLENGE
        }
        const bcrypt = hash ?? decoy
        if (bcrypt === undefined) return CHALLENGE
        const key = Bun.SHA256.hash(header, 'base64')
        const known = state.verified.get(key)
        if (known && known.hash === bcrypt) return known.ok && hash !== undefined ? accept(req, user) : CHALLENGE
        let pending = state.pending.get(key)
        if (!pending) {
          // an unknown user is checked against a real entry too: the answer takes as long
          pending = Bun.password.verify(password, bcrypt).then(
            (ok) => ok && hash !== undefined,
            () => false,
          )
          state.pending.set(key, pending)
          pending.then((ok) => {
            state.pending.delete(key)
            state.verified.set(key, { hash: bcrypt, ok })
          })
        }
        return pending.then((ok) => (ok ? accept(req, user) : CHALLENGE))
    }
    return {
      headOnly: true,
      onRequest(req) {
        if (ir.spec.skipPreflight && req.method === 'OPTIONS') return undefined
        if (anonymous) {
          const known = principalOf(req)?.consumer
          if (known && !known.anonymous) return undefined
        }
        return check(req)
      },
    }
  },
}
