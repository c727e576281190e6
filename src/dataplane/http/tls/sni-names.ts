/**
 * Which SNI names a certificate should answer for. A listener with one certificate serves it for
 * its hostname; a listener with several (e.g. one per domain, or RSA next to ECDSA) needs each
 * certificate under the names it actually carries, so Bun.serve's SNI table can pick it.
 */
import { X509Certificate } from 'node:crypto'

const cache = new Map<string, readonly string[]>()

/** DNS names in the certificate's subjectAltName (lower-case; wildcards kept), cached per PEM. */
export function dnsNamesOf(certPem: string): readonly string[] {
  const hit = cache.get(certPem)
  if (hit) return hit
  let names: string[] = []
  try {
    const san = new X509Certificate(certPem).subjectAltName ?? ''
    names = san
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part.startsWith('DNS:'))
      .map((part) => part.slice(4).toLowerCase())
  } catch {
    // an unreadable certificate carries no names; Bun reports it when the server starts
  }
  if (cache.size > 1000) cache.clear() // certificates churn rarely; keep the cache bounded anyway
  cache.set(certPem, names)
  return names
}

/** True when `name` (exact or wildcard) lies within the listener's hostname (undefined = any). */
export function withinListener(name: string, listenerHostname: string | undefined): boolean {
  if (!listenerHostname || listenerHostname === '*') return true
  if (name === listenerHostname) return true
  // a concrete name under a wildcard listener ("*.x" covers any deeper name, as Gateway API says);
  // wildcard names only when equal to the listener's (handled above)
  return listenerHostname.startsWith('*.') && !name.startsWith('*.') && name.endsWith(listenerHostname.slice(1)) && name.length > listenerHostname.length - 1
}
