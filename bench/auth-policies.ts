/**
 * SecurityPolicy targets for bench/http.ts (POLICIES=apiKeyAuth,jwt): each on a route of its
 * own, measured against the plain route with the same request headers.
 *  - apiKeyAuth: a Secret with one key, read from X-API-Key (a SHA-256 and a map lookup per
 *    request, on the front's direct path);
 *  - jwt: an RS256 token against an inline JWKS (the key is local, so "cached key"); the
 *    verified token is cached, so every request after the first is a cache lookup on the
 *    direct path (the first one goes through the pipeline while jose verifies it).
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose'

const API_KEY = 'bench-api-key-0123456789'
const keys = await generateKeyPair('RS256', { extractable: true })
const JWKS = JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' }] })
const TOKEN = await new SignJWT({ sub: 'bench-user', scope: 'read' })
  .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
  .setIssuer('https://bench.test')
  .setAudience('bench')
  .setExpirationTime('2h')
  .sign(keys.privateKey)

interface Case {
  readonly label: string
  readonly path: string
  readonly headers: readonly string[]
}

const checkAuth = (good: string, bad: string) => async (fetchCase: (c: Case) => Promise<Response>) => {
  const denied = await fetchCase({ label: 'bad', path: '/', headers: [bad] })
  await denied.arrayBuffer()
  if (denied.status !== 401) return `a bad credential answered ${denied.status}`
  for (let i = 0; i < 2; i++) {
    const ok = await fetchCase({ label: 'good', path: '/', headers: [good] })
    await ok.arrayBuffer()
    if (ok.status !== 200) return `a good credential answered ${ok.status}`
  }
  return undefined
}

const policy = (name: string, route: string, body: string) => `apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name} }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]
${body}`

export const AUTH_BENCHES = {
  apiKeyAuth: {
    manifest: (_gateway: string, route: string) => `apiVersion: v1
kind: Secret
metadata: { name: bench-api-keys }
stringData: { bench-client: ${API_KEY} }
---
${policy('bench-api-key', route, `  apiKeyAuth:\n    credentialRefs: [{ name: bench-api-keys }]\n    extractFrom: [{ headers: [x-api-key] }]\n`)}`,
    needle: '"apiKeyAuth"',
    cases: [{ label: 'small-key', path: '/', headers: [`X-API-Key: ${API_KEY}`] }],
    verify: checkAuth(`X-API-Key: ${API_KEY}`, 'X-API-Key: wrong'),
  },
  jwt: {
    manifest: (_gateway: string, route: string) =>
      policy(
        'bench-jwt',
        route,
        `  jwt:\n    providers:\n      - name: bench\n        issuer: https://bench.test\n        audiences: [bench]\n        localJWKS: { type: Inline, inline: ${JSON.stringify(JWKS)} }\n        claimToHeaders: [{ header: x-user, claim: sub }]\n`,
      ),
    needle: '"jwt"',
    cases: [{ label: 'small-bearer', path: '/', headers: [`Authorization: Bearer ${TOKEN}`] }],
    verify: checkAuth(`Authorization: Bearer ${TOKEN}`, `Authorization: Bearer ${TOKEN.slice(0, -4)}AAAA`),
  },
}
