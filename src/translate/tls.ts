/**
 * TLS material from Secrets and ConfigMaps, validated with node:crypto so a malformed PEM
 * becomes an InvalidCertificateRef condition instead of a listener that fails at handshake.
 * Expiry is deliberately not checked: it depends on the clock and translation must not.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import type { K8sObject } from '../store/kinds.ts'

export interface CertKey {
  readonly certPem: string
  readonly keyPem: string
  /** DNS names of the leaf (SAN, else CN), lower-case. */
  readonly names: readonly string[]
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** Reads a data key: `data` is base64 (as in the API), `stringData` plain text. */
export function secretValue(o: K8sObject, key: string): string | undefined {
  const plain = o.stringData?.[key]
  if (typeof plain === 'string') return plain
  const b64 = o.data?.[key]
  if (typeof b64 !== 'string') return undefined
  try {
    return Buffer.from(b64, 'base64').toString('utf8')
  } catch {
    return undefined
  }
}

// Parsing is the expensive part of translation; the same PEMs come back on every run.
const certCache = new Map<string, CertKey | string>()

/** Validates a kubernetes.io/tls Secret. Returns the pair, or why it is unusable. */
export function certificateFromSecret(secret: K8sObject): CertKey | string {
  if (secret.type !== undefined && secret.type !== 'kubernetes.io/tls') return `Secret type is ${secret.type}, want kubernetes.io/tls`
  const certPem = secretValue(secret, 'tls.crt')
  const keyPem = secretValue(secret, 'tls.key')
  if (!certPem || !keyPem) return 'Secret must contain tls.crt and tls.key'
  const cacheKey = `${certPem}\u0000${keyPem}`
  const hit = certCache.get(cacheKey)
  if (hit !== undefined) return hit
  const result = parsePair(certPem, keyPem)
  if (certCache.size > 1000) certCache.clear()
  certCache.set(cacheKey, result)
  return result
}

/**
 * Messages name the key and the parser's reason code only: they become status conditions,
 * /problems entries and log lines, so they never quote the PEM text.
 */
function parsePair(certPem: string, keyPem: string): CertKey | string {
  const blocks = certPem.match(PEM_BLOCK)
  if (!blocks) return 'tls.crt holds no PEM certificate'
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(blocks[0]!)
    for (const b of blocks.slice(1)) new X509Certificate(b)
  } catch (e) {
    return `invalid certificate in tls.crt${reasonCode(e)}`
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) return 'tls.key does not match the certificate in tls.crt'
  } catch (e) {
    return `invalid private key in tls.key${reasonCode(e)}`
  }
  return { certPem, keyPem, names: certificateNames(leaf) }
}

/** " (NO_START_LINE)" from an OpenSSL error ("error:0900006e:PEM routines:...:NO_START_LINE"), else "". */
function reasonCode(e: unknown): string {
  const message = e instanceof Error ? e.message : ''
  const code = message.match(/^error:[0-9a-fA-F]+:[^\n]*:([A-Z0-9_]+)$/)?.[1] ?? (e as { code?: unknown })?.code
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? ` (${code})` : ''
}

function certificateNames(cert: X509Certificate): string[] {
  const names = new Set<string>()
  for (const part of (cert.subjectAltName ?? '').split(',')) {
    const m = part.trim().match(/^DNS:(.+)$/)
    if (m) names.add(m[1]!.toLowerCase())
  }
  if (names.size === 0) {
    const cn = cert.subject.match(/(?:^|\n)CN=([^\n]+)/)
    if (cn) names.add(cn[1]!.toLowerCase())
  }
  return [...names].sort()
}

const caCache = new Map<string, string | { error: string }>()

/** A CA bundle from a ConfigMap's ca.crt: every PEM block must parse. */
export function caBundleFromConfigMap(cm: K8sObject): string | { error: string } {
  const pem = cm.data?.['ca.crt']
  if (typeof pem !== 'string' || pem.trim() === '') return { error: 'ConfigMap has no ca.crt' }
  const hit = caCache.get(pem)
  if (hit !== undefined) return hit
  let result: string | { error: string }
  const blocks = pem.match(PEM_BLOCK)
  if (!blocks) result = { error: 'ca.crt holds no PEM certificate' }
  else {
    try {
      for (const b of blocks) new X509Certificate(b)
      result = blocks.join('\n') + '\n'
    } catch (e) {
      result = { error: `invalid CA certificate${reasonCode(e)}` }
    }
  }
  if (caCache.size > 1000) caCache.clear()
  caCache.set(pem, result)
  return result
}
