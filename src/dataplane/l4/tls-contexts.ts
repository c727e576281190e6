/**
 * TLS material for terminate listeners: node:tls SecureContexts built from the route's PEMs.
 *
 * Parsing keys is slow (milliseconds for RSA), so contexts are cached by PEM content across
 * snapshots; a route change that keeps its certificate reuses the same context.
 */
import { X509Certificate } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'

interface LoadedCertificate {
  readonly context: SecureContext
  readonly certificate: X509Certificate
  readonly certPem: string
  readonly keyPem: string
}

/** The certificates one route may present; the SNI decides which. */
export class TerminateContexts {
  constructor(readonly loaded: readonly LoadedCertificate[]) {}

  /** The certificate whose SAN covers the name, else the first one (as the HTTPS listeners do). */
  contextFor(serverName: string | undefined): SecureContext | undefined {
    if (serverName !== undefined && this.loaded.length > 1) {
      for (const entry of this.loaded) {
        if (entry.certificate.checkHost(serverName) !== undefined) return entry.context
      }
    }
    return this.loaded[0]?.context
  }

  /** PEMs of the certificate served to clients that send no SNI. */
  get defaultPems(): { readonly cert: string; readonly key: string } | undefined {
    const first = this.loaded[0]
    return first && { cert: first.certPem, key: first.keyPem }
  }
}

export class CertificateCache {
  #entries = new Map<string, LoadedCertificate>()
  #usedSinceSweep = new Set<string>()

  contextsFor(
    certificates: readonly { readonly certPem: string; readonly keyPem: string }[],
    report: (problem: string) => void,
  ): TerminateContexts {
    const loaded: LoadedCertificate[] = []
    for (const { certPem, keyPem } of certificates) {
      const key = `${certPem}\0${keyPem}`
      this.#usedSinceSweep.add(key)
      let entry = this.#entries.get(key)
      if (!entry) {
        try {
          entry = {
            context: createSecureContext({ cert: certPem, key: keyPem }),
            certificate: new X509Certificate(certPem),
            certPem,
            keyPem,
          }
          this.#entries.set(key, entry)
        } catch (error) {
          report(`invalid certificate or key: ${(error as Error).message}`)
          continue
        }
      }
      loaded.push(entry)
    }
    if (certificates.length > 0 && loaded.length === 0) report('no usable certificate; TLS handshakes will fail')
    return new TerminateContexts(loaded)
  }

  /** Drop contexts no snapshot since the last sweep asked for (call after a plan goes live). */
  sweep(): void {
    for (const key of this.#entries.keys()) if (!this.#usedSinceSweep.has(key)) this.#entries.delete(key)
    this.#usedSinceSweep = new Set()
  }
}
