/**
 * SecurityPolicy translation: Secrets and ConfigMaps read through the translator context,
 * hashed or redacted in the IR, cross-namespace references behind ReferenceGrants, and fail
 * closed (policyRejected, 500) whenever the policy is rejected. The incremental Translator
 * follows Secret changes like translate() does.
 */
import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { configView } from '../../src/admin/redact.ts'
import { viewOf } from '../../src/store/store.ts'
import { translate } from '../../src/translate/index.ts'
import { Translator } from '../../src/translate/translator.ts'
import { loadObjects } from '../golden/load.ts'

const OPTS = { controllerName: 'portico.dev/gateway-controller' }

const BASE = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: portico
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { ports: [{ port: 80 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
`

const apiKeySecret = (keys: Record<string, string>, ns = 'default', name = 'api-keys') => `
---
apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: ${ns} }
stringData: ${JSON.stringify(keys)}
`

const policy = (body: string, name = 'auth') => `
---
apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name}, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z" }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: web }]
${body}
`

const API_KEY = `  apiKeyAuth:
    credentialRefs: [{ name: api-keys }]
    extractFrom: [{ headers: [x-api-key] }]
    forwardClientIDHeader: x-client-id`

function run(text: string) {
  const result = translate(viewOf(loadObjects(text), 1), OPTS)
  const rule = result.ir.http[0]!.listeners[0]!.virtualHosts[0]!.rules[0]!
  const accepted = (name = 'auth') => (result.status[`SecurityPolicy/default/${name}`] as any)?.ancestors?.[0]?.conditions?.[0]
  return { result, policies: rule.policies ?? [], accepted }
}

describe('SecurityPolicy translation', () => {
  test('apiKeyAuth: keys reach the IR as SHA-256 only, under a redacted field name', () => {
    const { result, policies, accepted } = run(BASE + apiKeySecret({ 'client-a': 'super-secret-key-a', 'client-b': 'super-secret-key-b' }) + policy(API_KEY))
    expect(accepted()).toMatchObject({ status: 'True', reason: 'Accepted' })
    expect(policies.map((p) => p.name)).toEqual(['apiKeyAuth'])
    const spec = policies[0]!.spec as any
    expect(spec.credentials).toEqual([
      { clientID: 'client-a', sha256: createHash('sha256').update('super-secret-key-a').digest('base64') },
      { clientID: 'client-b', sha256: createHash('sha256').update('super-secret-key-b').digest('base64') },
    ])
    expect(JSON.stringify(result.ir)).not.toContain('super-secret-key')
    const shown = JSON.stringify(configView(result.ir))
    expect(shown).not.toContain('super-secret-key')
    expect(shown).not.toContain(spec.credentials[0].sha256)
    expect(shown).toContain('"credentials":"[redacted]"')
  })

  test('basicAuth: htpasswd entries (hashes) in the IR, redacted in /config; unsupported formats rejected', () => {
    const bcrypt = Bun.password.hashSync('pw', { algorithm: 'bcrypt', cost: 4 })
    const secret = `\n---\napiVersion: v1\nkind: Secret\nmetadata: { name: users, namespace: default }\nstringData: { .htpasswd: ${JSON.stringify(`alice:${bcrypt}\n`)} }\n`
    const ok = run(BASE + secret + policy('  basicAuth:\n    users: { name: users }\n    forwardUsernameHeader: x-user'))
    expect(ok.accepted()).toMatchObject({ status: 'True' })
    expect((ok.policies[0]!.spec as any).htpasswd).toEqual([{ user: 'alice', hash: bcrypt }])
    expect(JSON.stringify(configView(ok.result.ir))).not.toContain(bcrypt)
    const md5 = secret.replace(bcrypt, '$apr1$xyz$0123456789abcdefghijkl')
    const bad = run(BASE + md5 + policy('  basicAuth:\n    users: { name: users }'))
    expect(bad.accepted()).toMatchObject({ status: 'False', reason: 'Invalid' })
    expect(bad.accepted().message).toContain('unsupported hash')
    expect(bad.accepted().message).not.toContain('xyz')
    expect(bad.policies.map((p) => p.name)).toEqual(['policyRejected'])
  })

  test('a missing Secret: Invalid naming it, and the route fails closed', () => {
    const { accepted, policies } = run(BASE + policy(API_KEY))
    expect(accepted()).toMatchObject({ status: 'False', reason: 'Invalid', message: 'apiKeyAuth.credentialRefs: Secret default/api-keys not found' })
    expect(policies.map((p) => p.name)).toEqual(['policyRejected'])
  })

  test('any rejection fails closed: schema errors and fields not supported yet too', () => {
    expect(run(BASE + policy('  apiKeyAuth: { extractFrom: [] }')).policies.map((p) => p.name)).toEqual(['policyRejected'])
    expect(run(BASE + policy('  csrf: {}')).policies.map((p) => p.name)).toEqual(['policyRejected'])
  })

  test('a Secret in another namespace needs a ReferenceGrant', () => {
    const cross = BASE + apiKeySecret({ c: 'k' }, 'vault') + policy(API_KEY.replace('{ name: api-keys }', '{ name: api-keys, namespace: vault }'))
    const denied = run(cross)
    expect(denied.accepted().message).toContain('no ReferenceGrant allows it')
    const grant = `
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: policies, namespace: vault }
spec:
  from: [{ group: gateway.portico.dev, kind: SecurityPolicy, namespace: default }]
  to: [{ group: "", kind: Secret }]
`
    const allowed = run(cross + grant)
    expect(allowed.accepted()).toMatchObject({ status: 'True' })
    expect(allowed.policies.map((p) => p.name)).toEqual(['apiKeyAuth'])
  })

  test('jwt: localJWKS from a ConfigMap; private or symmetric keys refused; authorization names a known provider', () => {
    const jwks = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'k1' }] })
    const cm = `\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: jwks, namespace: default }\ndata: { jwks: ${JSON.stringify(jwks)} }\n`
    const body = `  jwt:
    providers:
      - name: main
        issuer: https://issuer.test
        localJWKS: { type: ValueRef, valueRef: { kind: ConfigMap, name: jwks } }
  authorization:
    defaultAction: Deny
    rules: [{ action: Allow, principal: { jwt: { provider: main, scopes: [read] } } }]`
    const ok = run(BASE + cm + policy(body))
    expect(ok.accepted()).toMatchObject({ status: 'True' })
    expect(ok.policies.map((p) => p.name)).toEqual(['authorization', 'jwt'])
    expect(run(BASE + policy(body)).accepted().message).toContain('ConfigMap default/jwks not found')
    const oct = cm.replace(JSON.stringify(jwks), JSON.stringify(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] })))
    expect(run(BASE + oct + policy(body)).accepted().message).toContain('symmetric')
    expect(run(BASE + cm + policy(body.replace('provider: main,', 'provider: other,'))).accepted().message).toContain('does not define')
  })

  test('extAuth: the Service becomes a snapshot pool the feature names; a missing one rejects the policy', () => {
    const ok = run(BASE.replace('spec: { ports: [{ port: 80 }] }', 'spec: { ports: [{ port: 80 }] }\n---\napiVersion: v1\nkind: Service\nmetadata: { name: authz, namespace: default }\nspec: { ports: [{ port: 9000 }] }') + policy('  extAuth: { http: { backendRef: { name: authz, port: 9000 } } }'))
    expect(ok.accepted()).toMatchObject({ status: 'True' })
    expect(ok.policies[0]).toMatchObject({ name: 'extAuth', pools: ['default/authz:9000'], spec: { pool: 'default/authz:9000', path: '/', failOpen: false, timeoutMs: 10000 } })
    expect(Object.keys(ok.result.ir.pools).sort()).toEqual(['default/authz:9000', 'default/web:80'])
    const missing = run(BASE + policy('  extAuth: { http: { backendRef: { name: nope, port: 9000 } } }'))
    expect(missing.accepted().message).toBe('extAuth.http.backendRef: Service default/nope not found')
    expect(missing.policies.map((p) => p.name)).toEqual(['policyRejected'])
    expect(Object.keys(missing.result.ir.pools)).toEqual(['default/web:80'])
  })

  test('oidc: the client secret from its Secret, redacted in /config; a missing key rejects the policy', () => {
    const secret = `\n---\napiVersion: v1\nkind: Secret\nmetadata: { name: oidc, namespace: default }\nstringData: { client-secret: very-secret-client-value }\n`
    const body = '  oidc:\n    provider: { issuer: "https://login.example.com" }\n    clientID: portico\n    clientSecret: { name: oidc }\n    redirectURL: "https://app.example.com/oauth2/callback"'
    const ok = run(BASE + secret + policy(body))
    expect(ok.accepted()).toMatchObject({ status: 'True' })
    expect(ok.policies[0]).toMatchObject({ name: 'oidc', spec: { clientID: 'portico', logoutPath: '/logout', refreshToken: true, forwardAccessToken: false } })
    expect(JSON.stringify(configView(ok.result.ir))).not.toContain('very-secret-client-value')
    expect(JSON.stringify(configView(ok.result.ir))).toContain('"clientSecret":"[redacted]"')
    const wrongKey = run(BASE + secret.replace('client-secret:', 'secret:') + policy(body))
    expect(wrongKey.accepted().message).toBe('oidc.clientSecret: Secret oidc has no "client-secret" key')
    expect(wrongKey.policies.map((p) => p.name)).toEqual(['policyRejected'])
    expect(run(BASE + policy('  oidc: { clientID: x }')).accepted().message).toContain('provider is required')
  })
})

describe('the ExternalAuth HTTPRoute filter (GEP-1494)', () => {
  const withFilter = (externalAuth: string) =>
    BASE.replace('rules: [{ backendRefs: [{ name: web, port: 80 }] }]', `rules: [{ backendRefs: [{ name: web, port: 80 }], filters: [{ type: ExternalAuth, externalAuth: ${externalAuth} }] }]`) +
    '\n---\napiVersion: v1\nkind: Service\nmetadata: { name: authz, namespace: default }\nspec: { ports: [{ port: 9000 }] }\n'
  test('HTTP: the extAuth spec on the rule, its Service a pool', () => {
    const { result } = run(withFilter('{ protocol: HTTP, backendRef: { name: authz, port: 9000 }, http: { path: /verify, allowedHeaders: [cookie], allowedResponseHeaders: [x-user] } }'))
    const rule = result.ir.http[0]!.listeners[0]!.virtualHosts[0]!.rules[0]!
    expect(rule.filters).toEqual([{ type: 'ExternalAuth', pool: 'default/authz:9000', path: '/verify', headersToExtAuth: ['cookie'], headersToBackend: ['x-user'], failOpen: false, timeoutMs: 10000 }])
    expect(Object.keys(result.ir.pools).sort()).toEqual(['default/authz:9000', 'default/web:80'])
  })
  test('GRPC and forwardBody are not supported: the route says so', () => {
    const { result } = run(withFilter('{ protocol: GRPC, backendRef: { name: authz, port: 9000 } }'))
    const accepted = (result.status['HTTPRoute/default/web'] as any).parents[0].conditions.find((c: any) => c.type === 'Accepted')
    expect(accepted.message).toContain('ExternalAuth protocol GRPC is not supported')
  })
})

describe('the incremental Translator follows Secrets', () => {
  test('a key added, a Secret removed, a Secret restored: same as translate() each time', () => {
    const t = new Translator(OPTS)
    const objects = loadObjects(BASE + apiKeySecret({ a: 'key-1' }) + policy(API_KEY))
    const specOf = (r: ReturnType<Translator['translate']>) => r.ir.http[0]!.listeners[0]!.virtualHosts[0]!.rules[0]!.policies?.[0]
    let rev = 1
    const step = (objs: typeof objects) => {
      const view = viewOf(objs, rev++)
      const inc = t.translate(view)
      expect(JSON.stringify(inc.ir)).toBe(JSON.stringify(translate(view, OPTS).ir))
      return inc
    }
    expect((specOf(step(objects))!.spec as any).credentials).toHaveLength(1)
    const twoKeys = objects.map((o) => (o.kind === 'Secret' ? { ...o, stringData: { a: 'key-1', b: 'key-2' } } : o))
    expect((specOf(step(twoKeys))!.spec as any).credentials).toHaveLength(2)
    const noSecret = objects.filter((o) => o.kind !== 'Secret')
    expect(specOf(step(noSecret))!.name).toBe('policyRejected')
    expect((specOf(step(objects))!.spec as any).credentials).toHaveLength(1)
  })

  test('an extAuth Service pool stays in the snapshot while routes change, and goes with the policy', () => {
    const t = new Translator(OPTS)
    const svc = '\n---\napiVersion: v1\nkind: Service\nmetadata: { name: authz, namespace: default }\nspec: { ports: [{ port: 9000 }] }\n'
    const objects = loadObjects(BASE + svc + policy('  extAuth: { http: { backendRef: { name: authz, port: 9000 } } }'))
    let rev = 1
    const pools = (objs: typeof objects) => {
      const view = viewOf(objs, rev++)
      const inc = t.translate(view)
      expect(JSON.stringify(inc.ir)).toBe(JSON.stringify(translate(view, OPTS).ir))
      return Object.keys(inc.ir.pools).sort()
    }
    expect(pools(objects)).toEqual(['default/authz:9000', 'default/web:80'])
    const extraRoute = loadObjects(`apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: other, namespace: default }\nspec:\n  parentRefs: [{ name: gw }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]\n`)
    expect(pools([...objects, ...extraRoute])).toEqual(['default/authz:9000', 'default/web:80'])
    expect(pools(objects.filter((o) => o.kind !== 'SecurityPolicy'))).toEqual(['default/web:80'])
  })
})
