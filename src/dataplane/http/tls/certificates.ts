/** Certificate entries checked one by one, so a bad one can be dropped instead of failing the port. */
import { createSecureContext } from 'node:tls'
import type { TlsEntry } from '../../snapshot.ts'

export function usableEntries(entries: readonly TlsEntry[]): { usable: TlsEntry[]; problems: string[] } {
  const usable: TlsEntry[] = []
  const problems: string[] = []
  for (const entry of entries) {
    try {
      createSecureContext({ cert: entry.cert, key: entry.key, ...(entry.ca ? { ca: entry.ca } : {}) })
      usable.push(entry)
    } catch (err) {
      problems.push(`certificate for ${entry.serverName ?? 'the default listener'} rejected: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  return { usable, problems }
}
