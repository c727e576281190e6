#!/usr/bin/env bun
/**
 * In-process cost of the authentication hooks the front's direct path runs per request (no
 * sockets: what each one adds to a proxied request's CPU, without the machine's noise).
 *   npx bun bench/auth-hooks.ts
 * Prints ns per onRequest call for apiKeyAuth (a SHA-256 and a lookup), jwt with a cached
 * token (a Map lookup and the claim headers) and basicAuth with a cached bcrypt check.
 */
import { createHash } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { PolicyStateRegistry } from '../src/dataplane/policy-state.ts'
import { apiKeyAuthRuntime } from '../src/policy/auth-api-key/runtime.ts'
import { basicAuthRuntime } from '../src/policy/auth-basic/runtime.ts'
import { jwtRuntime } from '../src/policy/auth-jwt/runtime.ts'
import type { PolicyRequest } from '../src/policy/runtime.ts'

const N = Number(process.env.N ?? 500_000)
const ctx = () => ({ pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined })

function request(headers: Record<string, string>): PolicyRequest {
  return {
    method: 'GET',
    path: '/',
    query: '',
    host: 'bench',
    header: (n) => headers[n] ?? null,
    peerIp: '127.0.0.1',
    clientIp: '127.0.0.1',
    setUpstreamHeader: () => {},
    removeUpstreamHeader: () => {},
    generateRequestId: true,
    requestId: undefined,
  }
}

async function measure(name: string, run: (req: PolicyRequest) => unknown, headers: Record<string, string>) {
  const warm = run(request(headers))
  if (warm instanceof Promise) await warm
  for (let i = 0; i < 10_000; i++) run(request(headers))
  const base = performance.now()
  for (let i = 0; i < N; i++) request(headers)
  const empty = performance.now() - base
  const t = performance.now()
  for (let i = 0; i < N; i++) {
    const v = run(request(headers))
    if (v !== undefined) throw new Error(`${name} refused`)
  }
  const ns = ((performance.now() - t - empty) * 1e6) / N
  console.log(`${name.padEnd(28)} ${ns.toFixed(0).padStart(6)} ns/request`)
}

const KEY = 'bench-api-key-0123456789'
const apiKey = apiKeyAuthRuntime.compile(
  { name: 'apiKeyAuth', id: 'k', spec: { credentials: [{ clientID: 'c', sha256: createHash('sha256').update(KEY).digest('base64') }], extractFrom: [{ headers: ['x-api-key'] }], forwardClientIDHeader: 'x-client-id', sanitize: true } },
  ctx(),
)
await measure('apiKeyAuth', (r) => apiKey.onRequest!(r), { 'x-api-key': KEY })

const keys = await generateKeyPair('RS256', { extractable: true })
const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'b', alg: 'RS256' }] })
const token = await new SignJWT({ sub: 'u', scope: 'read' }).setProtectedHeader({ alg: 'RS256', kid: 'b' }).setIssuer('https://i').setAudience('a').setExpirationTime('1h').sign(keys.privateKey)
const jwt = jwtRuntime.compile({ name: 'jwt', id: 'j', spec: { providers: [{ name: 'p', issuer: 'https://i', audiences: ['a'], localJWKS: jwks, claimToHeaders: [{ header: 'x-user', claim: 'sub' }] }], optional: false } }, ctx())
await measure('jwt (cached token)', (r) => jwt.onRequest!(r), { authorization: `Bearer ${token}` })

const basic = basicAuthRuntime.compile({ name: 'basicAuth', id: 'b', spec: { htpasswd: [{ user: 'alice', hash: Bun.password.hashSync('pw', { algorithm: 'bcrypt', cost: 10 }) }] } }, ctx())
await measure('basicAuth (cached bcrypt)', (r) => basic.onRequest!(r), { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` })
