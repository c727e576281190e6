/**
 * ClientTrafficPolicy `headers.lateResponseHeaders`: one HTTPHeaderFilter applied to every
 * response a listener port sends (the typical use: remove or replace the backend's `Server`).
 * Two shapes of the same edit, one per HTTP path:
 *  - editResponseHead: a raw HTTP/1.x head (the front relaying a backend's head on its direct
 *    path, or answering itself);
 *  - editResponseHeaders: a Fetch Headers object (the Bun.serve/node:http2 pipeline, h1 and h2).
 * Neither runs when no policy asks for it: the callers test for the edits first.
 */
import type { ResponseHeaderEdits } from '../kind.ts'

/** Fields whose edit would change framing or the connection: the translator refuses them. */
export const UNEDITABLE_RESPONSE_FIELDS: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'])

/**
 * `head` is a complete head as latin1 text (status line, fields, blank line): the same head with
 * the edits applied, field order and case kept for the fields left alone.
 */
export function editResponseHead(head: string, edits: ResponseHeaderEdits): string {
  const statusEnd = head.indexOf('\r\n')
  let out = head.slice(0, statusEnd + 2)
  const end = head.length - 2 // the blank line's CRLF
  let at = statusEnd + 2
  while (at < end) {
    let lineEnd = head.indexOf('\r\n', at)
    if (lineEnd < 0 || lineEnd > end) lineEnd = end
    const colon = head.indexOf(':', at)
    const name = colon > at && colon < lineEnd ? head.slice(at, colon).trim().toLowerCase() : ''
    if (!dropped(name, edits)) out += head.slice(at, lineEnd + 2)
    at = lineEnd + 2
  }
  for (const [name, value] of edits.set) out += `${name}: ${value}\r\n`
  for (const [name, value] of edits.add) out += `${name}: ${value}\r\n`
  return `${out}\r\n`
}

/** The same edits on a mutable Headers object. */
export function editResponseHeaders(headers: Headers, edits: ResponseHeaderEdits): void {
  for (const name of edits.remove) headers.delete(name)
  for (const [name, value] of edits.set) headers.set(name, value)
  for (const [name, value] of edits.add) headers.append(name, value)
}

function dropped(name: string, edits: ResponseHeaderEdits): boolean {
  if (name === '') return false
  if (edits.remove.includes(name)) return true
  for (const [setName] of edits.set) if (setName.toLowerCase() === name) return true
  return false
}
