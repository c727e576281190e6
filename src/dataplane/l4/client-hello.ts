/**
 * Reads the SNI server name out of the first bytes a TLS client sends, without terminating TLS.
 *
 * The input is untrusted and may arrive in pieces, so the parser never throws: every length is
 * checked against what is buffered, and the answer is either "need more bytes", "here is the
 * ClientHello", or "this is not a TLS ClientHello" (the caller closes the connection).
 */

/** A ClientHello is normally < 2 KB (post-quantum key shares included); anything past this is abuse. */
export const MAX_CLIENT_HELLO_BYTES = 32 * 1024

const RECORD_HEADER = 5
const CONTENT_TYPE_HANDSHAKE = 22
const HANDSHAKE_CLIENT_HELLO = 1
const EXTENSION_SERVER_NAME = 0
const NAME_TYPE_HOST_NAME = 0

export type ClientHelloResult =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** serverName is lower-case without a trailing dot; undefined when the client sent no SNI. */
  | { readonly kind: 'complete'; readonly serverName?: string }

const INCOMPLETE = { kind: 'incomplete' } as const

const invalid = (reason: string) => ({ kind: 'invalid', reason }) as const

/**
 * Parse the buffered bytes. The handshake message may be fragmented over several TLS records and
 * each record over several TCP segments; both are reassembled here.
 */
export function parseClientHello(buffered: Uint8Array): ClientHelloResult {
  const handshake = reassembleHandshake(buffered)
  if (handshake.kind !== 'complete') return handshake
  return parseHelloBody(handshake.body)
}

type Reassembly =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'complete'; readonly body: Uint8Array }

/** Concatenate handshake record fragments until the first handshake message is whole. */
function reassembleHandshake(buffered: Uint8Array): Reassembly {
  const fragments: Uint8Array[] = []
  let fragmentBytes = 0
  let offset = 0
  let messageLength = -1
  while (true) {
    if (buffered.length < offset + RECORD_HEADER) return INCOMPLETE
    if (buffered[offset] !== CONTENT_TYPE_HANDSHAKE) return invalid('not a TLS handshake record')
    // Record versions in a ClientHello are 0x0301..0x0303 (major 3); anything else is not TLS.
    if (buffered[offset + 1] !== 3) return invalid('unsupported record version')
    const recordLength = readUint16(buffered, offset + 3)
    if (recordLength === 0 || recordLength > 16384 + 2048) return invalid('bad record length')
    const start = offset + RECORD_HEADER
    const available = Math.min(recordLength, buffered.length - start)
    fragments.push(buffered.subarray(start, start + available))
    fragmentBytes += available
    if (messageLength < 0 && fragmentBytes >= 4) {
      const head = concat(fragments, 4)
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('first handshake message is not a ClientHello')
      messageLength = (head[1]! << 16) | (head[2]! << 8) | head[3]!
      if (messageLength + 4 > MAX_CLIENT_HELLO_BYTES) return invalid('ClientHello too large')
    }
    if (messageLength >= 0 && fragmentBytes >= messageLength + 4) {
      return { kind: 'complete', body: concat(fragments, messageLength + 4).subarray(4) }
    }
    if (available < recordLength) return INCOMPLETE
    offset = start + recordLength
  }
}

function parseHelloBody(body: Uint8Array): ClientHelloResult {
  const reader = new Reader(body)
  reader.skip(2 + 32) // legacy_version, random
  reader.skip(reader.uint8()) // legacy_session_id
  reader.skip(reader.uint16()) // cipher_suites
  reader.skip(reader.uint8()) // legacy_compression_methods
  if (reader.failed) return invalid('truncated ClientHello')
  if (reader.remaining === 0) return { kind: 'complete' } // no extensions at all (old clients)
  const extensionsLength = reader.uint16()
  const extensionsEnd = reader.offset + extensionsLength
  if (reader.failed || extensionsEnd > body.length) return invalid('bad extensions length')
  while (reader.offset + 4 <= extensionsEnd) {
    const type = reader.uint16()
    const length = reader.uint16()
    if (reader.offset + length > extensionsEnd) return invalid('extension overruns ClientHello')
    if (type === EXTENSION_SERVER_NAME) return parseServerName(body.subarray(reader.offset, reader.offset + length))
    reader.skip(length)
  }
  return { kind: 'complete' }
}

function parseServerName(extension: Uint8Array): ClientHelloResult {
  const reader = new Reader(extension)
  const listLength = reader.uint16()
  const listEnd = reader.offset + listLength
  if (reader.failed || listEnd > extension.length) return invalid('bad server_name list')
  while (reader.offset + 3 <= listEnd) {
    const nameType = reader.uint8()
    const length = reader.uint16()
    if (reader.offset + length > listEnd) return invalid('server_name overruns extension')
    if (nameType === NAME_TYPE_HOST_NAME) {
      const name = normaliseServerName(extension.subarray(reader.offset, reader.offset + length))
      return name === undefined ? invalid('malformed server_name') : { kind: 'complete', serverName: name }
    }
    reader.skip(length)
  }
  return { kind: 'complete' }
}

/** DNS names only: letters, digits, '-', '_', '.'; at most 253 characters. */
function normaliseServerName(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0 || bytes.length > 254) return undefined
  let name = ''
  for (const byte of bytes) {
    const isAllowed =
      (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39) ||
      byte === 0x2d || byte === 0x2e || byte === 0x5f
    if (!isAllowed) return undefined
    name += String.fromCharCode(byte)
  }
  name = name.toLowerCase()
  if (name.endsWith('.')) name = name.slice(0, -1)
  return name.length > 0 ? name : undefined
}

/** Bounds-checked cursor: reads past the end set `failed` instead of throwing. */
class Reader {
  offset = 0
  failed = false

  constructor(private readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset
  }

  uint8(): number {
    if (this.offset + 1 > this.bytes.length) return this.fail()
    return this.bytes[this.offset++]!
  }

  uint16(): number {
    if (this.offset + 2 > this.bytes.length) return this.fail()
    const value = readUint16(this.bytes, this.offset)
    this.offset += 2
    return value
  }

  skip(count: number): void {
    if (this.offset + count > this.bytes.length) this.fail()
    else this.offset += count
  }

  private fail(): number {
    this.failed = true
    this.offset = this.bytes.length
    return 0
  }
}

function readUint16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!
}

/** The first `length` bytes of the concatenated fragments (the caller has checked they exist). */
function concat(fragments: readonly Uint8Array[], length: number): Uint8Array {
  if (fragments.length === 1) return fragments[0]!.subarray(0, length)
  const out = new Uint8Array(length)
  let filled = 0
  for (const fragment of fragments) {
    const take = Math.min(fragment.length, length - filled)
    out.set(fragment.subarray(0, take), filled)
    filled += take
    if (filled === length) break
  }
  return out
}
