/** The view builders of the admin API: Secret data and private keys never enter a view. */
import { describe, expect, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { certificateSummary, configView, objectView, REDACTED, SECRET_FIELDS, secretView } from '../../src/admin/redact.ts'
import { resourcesView } from '../../src/admin/resources.ts'
import type { K8sObject } from '../../src/store/kinds.ts'
import type { Snapshot } from '../../src/ir/types.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { privateKeyNeedles } from '../support/secret-needles.ts'

const cert = makeCertificate(['shop.example.com', 'www.shop.example.com'])
const b64 = (s: string) => Buffer.from(s).toString('base64')
const keyBody = (pem: string) => pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '')
const OPAQUE = 'hunter2-opaque-value-7f3a'

const tlsSecret: K8sObject = {
  apiVersion: 'v1',
  kind: 'Secret',
  type: 'kubernetes.io/tls',
  metadata: {
    name: 'shop-cert',
    namespace: 'web',
    uid: 'u-1',
    resourceVersion: '42',
    creationTimestamp: '2026-01-01T00:00:00Z',
    labels: { app: 'shop' },
    annotations: {
      'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ data: { 'tls.key': b64(cert.keyPem) } }),
      'example.com/owner': 'team-a',
    },
    managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:data': { 'f:tls.key': {} } } }],
  } as K8sObject['metadata'],
  data: { 'tls.crt': b64(cert.certPem), 'tls.key': b64(cert.keyPem) },
}
const opaque: K8sObject = {
  apiVersion: 'v1',
  kind: 'Secret',
  type: 'Opaque',
  metadata: { name: 'creds', namespace: 'web' },
  data: { password: b64(OPAQUE) },
  stringData: { username: 'admin', apiKey: OPAQUE },
}

function leaks(text: string): string[] {
  const found: string[] = []
  for (const [what, needle] of [
    ['key PEM body', keyBody(cert.keyPem).slice(0, 40)],
    ['opaque value', OPAQUE],
    ['opaque base64', b64(OPAQUE)],
    ...privateKeyNeedles(cert.keyPem, cert.certPem),
  ] as const)
    if (text.includes(needle)) found.push(what)
  return found
}

describe('secretView', () => {
  test('a TLS Secret: metadata, key names and a certificate summary; no data, no last-applied, no managedFields', () => {
    const v = secretView(tlsSecret)
    expect(Object.keys(v).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'redacted', 'type'])
    expect(v.type).toBe('kubernetes.io/tls')
    expect(v.metadata).toEqual({
      name: 'shop-cert',
      namespace: 'web',
      uid: 'u-1',
      resourceVersion: '42',
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { app: 'shop' },
      annotations: { 'example.com/owner': 'team-a' },
    })
    expect(v.redacted.keys).toEqual(['tls.crt', 'tls.key'])
    const x = new X509Certificate(cert.certPem)
    expect(v.redacted.certificate).toEqual({
      subject: 'CN=shop.example.com',
      issuer: 'CN=shop.example.com',
      sans: ['DNS:shop.example.com', 'DNS:www.shop.example.com'],
      notBefore: new Date(x.validFrom).toISOString(),
      notAfter: new Date(x.validTo).toISOString(),
      fingerprintSha256: x.fingerprint256,
    })
    expect(leaks(JSON.stringify(v))).toEqual([])
  })

  test('an Opaque Secret: key names from data and stringData, sorted; no values', () => {
    const v = secretView(opaque)
    expect(v.redacted).toEqual({ keys: ['apiKey', 'password', 'username'] })
    expect(JSON.stringify(v)).not.toContain('admin"')
    expect(leaks(JSON.stringify(v))).toEqual([])
  })

  test('stringData tls.crt is summarised too; an unparseable tls.crt gives no summary', () => {
    expect(secretView({ ...opaque, data: undefined, stringData: { 'tls.crt': cert.certPem, 'tls.key': cert.keyPem } }).redacted.certificate?.subject).toBe('CN=shop.example.com')
    const broken = secretView({ ...opaque, stringData: undefined, data: { 'tls.crt': b64('-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n'), 'tls.key': b64(cert.keyPem) } })
    expect(broken.redacted).toEqual({ keys: ['tls.crt', 'tls.key'] })
  })

  test('metadata is copied by allowlist: unknown metadata fields and non-string annotation values are dropped', () => {
    const weird = { ...opaque, metadata: { name: 's', namespace: 'n', annotations: { a: 'b', n: 1 as unknown as string }, extra: OPAQUE } as unknown as K8sObject['metadata'], stray: OPAQUE } as K8sObject
    const v = secretView(weird)
    expect(v.metadata).toEqual({ name: 's', namespace: 'n', annotations: { a: 'b' } })
    expect(leaks(JSON.stringify(v))).toEqual([])
  })

  test('objectView shows other kinds (ConfigMaps included) as they are', () => {
    const cm: K8sObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca', namespace: 'web' }, data: { 'ca.crt': cert.certPem } }
    expect(objectView(cm)).toEqual(cm)
    expect(objectView(cm)).not.toBe(cm)
    expect('data' in objectView(tlsSecret)).toBe(false)
  })
})

describe('resourcesView', () => {
  test('Secrets go through secretView, also with a load problem attached', () => {
    const view = resourcesView([tlsSecret, opaque], () => undefined, [{ origin: 'routes/s.yaml', line: 1, objectKey: 'Secret/web/creds', message: 'YAML error: bad indent' }])
    expect(view.map((o) => o.metadata.name)).toEqual(['creds', 'shop-cert'])
    expect((view[0]!.status as any).conditions[0].reason).toBe('Invalid')
    expect(leaks(JSON.stringify(view))).toEqual([])
  })
})

describe('configView', () => {
  const snapshot: Snapshot = {
    revision: 3,
    http: [
      {
        port: 8443,
        protocol: 'HTTPS',
        listeners: [{ id: 'gateway/web/gw/https', tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] }, virtualHosts: [] }],
      },
    ],
    l4: [{ port: 9443, protocol: 'TLS', routes: [{ id: 'tlsroute/web/t/rule/0', owner: { kind: 'TLSRoute', namespace: 'web', name: 't' }, hostnames: [], terminate: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] }, backends: [] }] }],
    pools: { 'web/svc:80': { key: 'web/svc:80', endpoints: [], protocol: 'http', policy: { type: 'RoundRobin' } } },
  }

  test('every keyPem is replaced, and its certificate summarised; everything else is kept', () => {
    const v = configView(snapshot) as any
    const httpCert = v.http[0].listeners[0].tls.certificates[0]
    expect(httpCert.keyPem).toBe(REDACTED)
    expect(httpCert.certPem).toBe(cert.certPem)
    expect(httpCert.certificate).toEqual(certificateSummary(cert.certPem))
    expect(v.l4[0].routes[0].terminate.certificates[0].keyPem).toBe(REDACTED)
    expect(v.pools['web/svc:80'].key).toBe('web/svc:80')
    expect(v.revision).toBe(3)
    expect(leaks(JSON.stringify(v))).toEqual([])
    // the live snapshot itself is untouched
    expect(snapshot.http[0]!.listeners[0]!.tls!.certificates[0]!.keyPem).toBe(cert.keyPem)
  })

  test('any SECRET_FIELDS name is redacted wherever it appears (policy specs included)', () => {
    expect(SECRET_FIELDS.has('keyPem')).toBe(true)
    const withPolicy = { rules: [{ policies: [{ name: 'basicAuth', id: 'p#basicAuth', spec: { htpasswd: OPAQUE, realm: 'r', nested: [{ password: OPAQUE, token: OPAQUE, clientSecret: OPAQUE }] } }] }] }
    const v = configView(withPolicy) as any
    expect(v.rules[0].policies[0].spec.htpasswd).toBe(REDACTED)
    expect(v.rules[0].policies[0].spec.realm).toBe('r')
    expect(v.rules[0].policies[0].spec.nested[0]).toEqual({ password: REDACTED, token: REDACTED, clientSecret: REDACTED })
    expect(leaks(JSON.stringify(v))).toEqual([])
  })

  // keyPem is the one secret field of the IR today; a new IR field named like a SECRET_FIELDS
  // entry is hidden from /config, so this list changes only on purpose
  test('no IR field that is not secret shares a name with SECRET_FIELDS', async () => {
    const types = await Bun.file(new URL('../../src/ir/types.ts', import.meta.url)).text()
    const fields = new Set([...types.matchAll(/readonly (\w+)\??:/g)].map((m) => m[1]!))
    expect([...SECRET_FIELDS].filter((f) => fields.has(f))).toEqual(['keyPem'])
  })
})
