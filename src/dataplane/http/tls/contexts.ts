/**
 * The TLS contexts of one HTTPS port, built once per certificate set and picked per connection by
 * the SNI the front read from the ClientHello (front/tls-handshake.ts).
 *
 * A certificate rotation builds a new TlsContexts and the front hands it to new connections only:
 * the listening socket never changes, so no handshake or request fails during a rotation, and
 * connections already open finish on the context they started with.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import type { TlsEntry } from '../../snapshot.ts'
import { usableEntries } from './certificates.ts'
import type { TlsProtocolSettings } from '../../../policy/kind.ts'

export type { TlsProtocolSettings }

/**
 * Modern default (Mozilla "intermediate" minus DHE): TLS 1.2+ with ECDHE and AEAD suites only, in
 * server order, so an old client cannot pick static RSA or CBC.
 */
export const DEFAULT_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')
export const DEFAULT_CURVES = 'X25519:P-256:P-384'
export const DEFAULT_ALPN = ['h2', 'http/1.1'] as const

/** What a connection needs to start TLS: the native context and the client-certificate policy. */
export interface PortContext {
  /** The native context (what Bun's upgradeTLS takes as `secureContext`). */
  readonly native: unknown
  readonly requestCert: boolean
  readonly rejectUnauthorized: boolean
}

export class TlsContexts {
  readonly #exact = new Map<string, PortContext>()
  /** '*.example.com' certificates by their suffix ('.example.com'). */
  readonly #wildcard = new Map<string, PortContext>()
  readonly #fallback: PortContext
  /** ALPN protocol list in wire format (length-prefixed names). */
  readonly alpnWire: Buffer
  readonly h2: boolean

  private constructor(entries: readonly TlsEntry[], settings: TlsProtocolSettings | undefined) {
    const alpn = settings?.alpnProtocols ?? DEFAULT_ALPN
    this.h2 = alpn.includes('h2')
    this.alpnWire = Buffer.concat(alpn.map((p) => Buffer.concat([Buffer.of(p.length), Buffer.from(p, 'latin1')])))
    let fallback: PortContext | undefined
    for (const entry of entries) {
      const context = buildContext(entry, settings)
      fallback ??= context
      const name = entry.serverName
      if (!name) continue
      if (name.startsWith('*.')) {
        if (!this.#wildcard.has(name.slice(1))) this.#wildcard.set(name.slice(1), context)
      } else if (!this.#exact.has(name)) this.#exact.set(name, context)
    }
    this.#fallback = fallback!
  }

  /**
   * Contexts for `entries` (the default certificate first). Entries Bun rejects are dropped with a
   * problem each, so one bad certificate does not take the port's other listeners down; a string
   * says why nothing could be built.
   */
  static build(entries: readonly TlsEntry[], settings?: TlsProtocolSettings): { contexts: TlsContexts; problems: string[] } | string {
    if (entries.length === 0) return 'HTTPS port has no usable certificate'
    try {
      return { contexts: new TlsContexts(entries, settings), problems: [] }
    } catch (err) {
      const { usable, problems } = usableEntries(entries)
      if (usable.length === 0 || usable.length === entries.length) return `TLS setup failed: ${err instanceof Error ? err.message : String(err)}`
      try {
        return { contexts: new TlsContexts(usable, settings), problems }
      } catch (retryErr) {
        return `TLS setup failed: ${retryErr instanceof Error ? retryErr.message : String(retryErr)}`
      }
    }
  }

  /** The context for a ClientHello's SNI (lower-case): exact name, then one wildcard level, else the default. */
  forServerName(serverName: string | undefined): PortContext {
    if (!serverName) return this.#fallback
    const exact = this.#exact.get(serverName)
    if (exact) return exact
    const dot = serverName.indexOf('.')
    if (dot > 0) {
      const wild = this.#wildcard.get(serverName.slice(dot))
      if (wild) return wild
    }
    return this.#fallback
  }
}

function buildContext(entry: TlsEntry, settings: TlsProtocolSettings | undefined): PortContext {
  const requestCert = entry.requestCert === true
  const rejectUnauthorized = requestCert && entry.rejectUnauthorized !== false
  const secure: SecureContext = createSecureContext({
    cert: entry.cert,
    key: entry.key,
    ...(entry.ca ? { ca: entry.ca } : {}),
    minVersion: (settings?.minVersion ?? 'TLSv1.2') as 'TLSv1.2',
    ...(settings?.maxVersion ? { maxVersion: settings.maxVersion as 'TLSv1.3' } : {}),
    ciphers: settings?.ciphers ?? DEFAULT_CIPHERS,
    ecdhCurve: settings?.ecdhCurves ?? DEFAULT_CURVES,
    honorCipherOrder: true,
    // Bun reads these off the context options when it builds the native SSL_CTX.
    ...({ requestCert, rejectUnauthorized } as object),
  })
  return { native: (secure as unknown as { context: unknown }).context, requestCert, rejectUnauthorized }
}
