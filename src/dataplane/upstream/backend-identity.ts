/**
 * BackendTLSPolicy `validation.subjectAltNames`: when given, the backend's certificate must carry
 * at least one of them, and the policy hostname is then used for SNI only (Gateway API v1).
 * Hostname entries match DNS SANs with the usual wildcard rules; URI entries (e.g. SPIFFE IDs)
 * must equal a URI SAN exactly.
 */
import { checkServerIdentity, type PeerCertificate } from 'node:tls'

export type IdentityCheck = (hostname: string, cert: PeerCertificate) => Error | undefined

export function subjectAltNameCheck(subjectAltNames: readonly string[]): IdentityCheck {
  const uris = subjectAltNames.filter(isUri)
  const hostnames = subjectAltNames.filter((name) => !isUri(name))
  return (_hostname, cert) => {
    const sans = parseSans(cert.subjectaltname)
    if (uris.some((uri) => sans.uris.includes(uri))) return undefined
    // Node's check also falls back to the CN when there are no DNS SANs, as TLS clients do.
    if (hostnames.some((name) => checkServerIdentity(name, cert) === undefined)) return undefined
    const presented = [...sans.dns.map((d) => `DNS:${d}`), ...sans.uris.map((u) => `URI:${u}`)].join(', ') || 'none'
    return Object.assign(new Error(`backend certificate matches none of the subjectAltNames [${subjectAltNames.join(', ')}] (it has ${presented})`), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    })
  }
}

function isUri(name: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(name)
}

function parseSans(field: string | undefined): { dns: string[]; uris: string[] } {
  const dns: string[] = []
  const uris: string[] = []
  for (const part of (field ?? '').split(',')) {
    const entry = part.trim()
    if (entry.startsWith('DNS:')) dns.push(entry.slice(4))
    else if (entry.startsWith('URI:')) uris.push(entry.slice(4))
  }
  return { dns, uris }
}
