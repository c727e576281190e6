/**
 * What the admin views may show. Secret material never enters a view: each view is built from
 * the object or IR by a function that copies what may be shown and summarises the rest, so
 * there is nothing to filter out of the serialised answer afterwards.
 *
 * - A Secret is shown as its kind, type and metadata (annotations without kubectl's
 *   last-applied copy, which holds the whole Secret; no managedFields), the names of its keys,
 *   and a summary of the certificate in `tls.crt` when there is one. Never `data` or `stringData`.
 * - The IR (`/config`) is copied with every field named in SECRET_FIELDS replaced by REDACTED;
 *   a certificate entry (`certPem` + `keyPem`) also gets a `certificate` summary instead.
 */
import { X509Certificate } from 'node:crypto'
import type { K8sObject } from '../store/kinds.ts'

/** What a view shows of an X.509 certificate. */
export interface CertificateSummary {
  readonly subject: string
  readonly issuer: string
  /** subjectAltName entries as OpenSSL prints them ("DNS:example.com", "IP Address:10.0.0.1"). */
  readonly sans: readonly string[]
  readonly notBefore: string
  readonly notAfter: string
  /** Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprintSha256: string
}

/** What a view shows of a Secret: no values, ever. */
export interface SecretView {
  readonly apiVersion: string
  readonly kind: string
  readonly type?: string
  readonly metadata: Record<string, unknown>
  readonly redacted: { readonly keys: readonly string[]; readonly certificate?: CertificateSummary }
  status?: unknown
}

/**
 * IR field names whose values are secret, wherever they appear in a snapshot (policy specs
 * included). Only `keyPem` (a listener's or TLSRoute's private key) exists in the IR today; the
 * others are reserved for the authentication policies to come (API keys, basic auth, OIDC):
 * a field that carries Secret data must use one of these names, or be added here.
 */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([
  'keyPem',
  'privateKey',
  'password',
  'token',
  'bearerToken',
  'clientSecret',
  'apiKeys',
  'credentials',
  'htpasswd',
])

export const REDACTED = '[redacted]'

/** Annotations never shown: kubectl's last-applied copy of a Secret holds its data in clear. */
const HIDDEN_ANNOTATIONS: ReadonlySet<string> = new Set(['kubectl.kubernetes.io/last-applied-configuration'])

const SECRET_METADATA_SCALARS = ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp'] as const

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/

const summaries = new Map<string, CertificateSummary | null>()

/** Summary of the first certificate in `pem`, or undefined when it holds none that parses. */
export function certificateSummary(pem: string): CertificateSummary | undefined {
  const hit = summaries.get(pem)
  if (hit !== undefined) return hit ?? undefined
  let summary: CertificateSummary | null = null
  const block = pem.match(PEM_CERTIFICATE)
  if (block) {
    try {
      const cert = new X509Certificate(block[0])
      summary = {
        subject: distinguishedName(cert.subject),
        issuer: distinguishedName(cert.issuer),
        sans: (cert.subjectAltName ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
        notBefore: isoDate(cert.validFrom),
        notAfter: isoDate(cert.validTo),
        fingerprintSha256: cert.fingerprint256,
      }
    } catch {
      summary = null
    }
  }
  if (summaries.size > 1000) summaries.clear()
  summaries.set(pem, summary)
  return summary ?? undefined
}

/** The view of a Secret: metadata, key names and a certificate summary; never a value. */
export function secretView(o: K8sObject): SecretView {
  const md = (o.metadata ?? {}) as unknown as Record<string, unknown>
  const metadata: Record<string, unknown> = {}
  for (const f of SECRET_METADATA_SCALARS) {
    const v = md[f]
    if (typeof v === 'string' || typeof v === 'number') metadata[f] = v
  }
  const labels = stringMap(md.labels, () => true)
  if (labels) metadata.labels = labels
  const annotations = stringMap(md.annotations, (k) => !HIDDEN_ANNOTATIONS.has(k))
  if (annotations) metadata.annotations = annotations
  const data = isRecord(o.data) ? o.data : {}
  const stringData = isRecord(o.stringData) ? o.stringData : {}
  const keys = [...new Set([...Object.keys(data), ...Object.keys(stringData)])].sort()
  const crt = typeof stringData['tls.crt'] === 'string' ? stringData['tls.crt'] : typeof data['tls.crt'] === 'string' ? Buffer.from(data['tls.crt'], 'base64').toString('utf8') : undefined
  const certificate = crt === undefined ? undefined : certificateSummary(crt)
  const view: SecretView = {
    apiVersion: String(o.apiVersion),
    kind: 'Secret',
    ...(typeof o.type === 'string' ? { type: o.type } : {}),
    metadata,
    redacted: certificate ? { keys, certificate } : { keys },
  }
  return view
}

/** The view of any stored object: Secrets through secretView, other kinds as they are. */
export function objectView(o: K8sObject): K8sObject | SecretView {
  return o.kind === 'Secret' ? secretView(o) : { ...o }
}

/**
 * The view of the live IR: a copy in which every SECRET_FIELDS value is REDACTED and every
 * certificate entry carries a summary of its certificate.
 */
export function configView<T>(ir: T): unknown {
  return copyRedacted(ir)
}

function copyRedacted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copyRedacted)
  if (v === null || typeof v !== 'object') return v
  const src = v as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, val] of Object.entries(src)) out[k] = SECRET_FIELDS.has(k) ? REDACTED : copyRedacted(val)
  if ('keyPem' in src && typeof src.certPem === 'string') {
    const summary = certificateSummary(src.certPem)
    if (summary) out.certificate = summary
  }
  return out
}

function distinguishedName(dn: string): string {
  return dn.split('\n').map((s) => s.trim()).filter((s) => s !== '').join(', ')
}

function isoDate(s: string): string {
  const d = new Date(s)
  return Number.isNaN(d.getTime()) ? s : d.toISOString()
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function stringMap(v: unknown, keep: (key: string) => boolean): Record<string, string> | undefined {
  if (!isRecord(v)) return undefined
  const out: Record<string, string> = {}
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string' && keep(k)) out[k] = val
  return Object.keys(out).length ? out : undefined
}
