/** Certificate and key problems become conditions, /problems entries and log lines: never with PEM text in them. */
import { expect, test } from 'bun:test'
import { caBundleFromConfigMap, certificateFromSecret } from '../../src/translate/tls.ts'
import type { K8sObject } from '../../src/store/kinds.ts'
import { makeCertificate } from '../l4/support/servers.ts'

const cert = makeCertificate(['a.example'])
const other = makeCertificate(['b.example'])
const b64 = (s: string) => Buffer.from(s).toString('base64')
const secret = (crt: string, key: string): K8sObject => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 's', namespace: 'n' }, data: { 'tls.crt': b64(crt), 'tls.key': b64(key) } })
const MARK = 'Q0xBU1NJRklFRC1LRVktTUFURVJJQUw'

test.each([
  ['garbage key in a PEM block', cert.certPem, `-----BEGIN PRIVATE KEY-----\n${MARK}\n-----END PRIVATE KEY-----\n`, /^invalid private key in tls\.key( \([A-Z0-9_]+\))?$/],
  ['no PEM key at all', cert.certPem, MARK, /^invalid private key in tls\.key( \([A-Z0-9_]+\))?$/],
  ['a truncated key', cert.certPem, cert.keyPem.slice(0, 120) + '\n-----END PRIVATE KEY-----\n', /^invalid private key in tls\.key( \([A-Z0-9_]+\))?$/],
  ['garbage certificate', `-----BEGIN CERTIFICATE-----\n${MARK}\n-----END CERTIFICATE-----\n`, cert.keyPem, /^invalid certificate in tls\.crt( \([A-Z0-9_]+\))?$/],
  ['no certificate', MARK, cert.keyPem, /^tls\.crt holds no PEM certificate$/],
  ['a key of another certificate', cert.certPem, other.keyPem, /^tls\.key does not match the certificate in tls\.crt$/],
])('%s', (_name, crt, key, expected) => {
  const result = certificateFromSecret(secret(crt, key))
  expect(typeof result).toBe('string')
  expect(result as string).toMatch(expected)
  expect(result as string).not.toContain(MARK)
  expect(result as string).not.toContain('PRIVATE KEY')
})

test('a bad CA bundle names the reason only', () => {
  const r = caBundleFromConfigMap({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n' }, data: { 'ca.crt': `-----BEGIN CERTIFICATE-----\n${MARK}\n-----END CERTIFICATE-----\n` } })
  expect(r).toMatchObject({ error: expect.stringMatching(/^invalid CA certificate( \([A-Z0-9_]+\))?$/) })
})
