/**
 * PROXY protocol v1 (text) and v2 (binary), both directions
 * (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt).
 *
 * Receiving: a load balancer in front of the gateway writes one header before the client's first
 * byte; it carries the real client (source) and the address the client connected to
 * (destination). `ProxyHeaderReader` collects bytes until the header is complete and says what
 * follows it. It is strict, as HAProxy and Envoy are: a header that is malformed, too long, or
 * absent where one is required fails the connection, which the caller closes without answering.
 * In optional mode a connection whose first bytes cannot start a header is passed on unchanged
 * (the decision needs at most 12 bytes: "PROXY " for v1, the 12-byte signature for v2).
 *
 * Sending: `buildProxyHeader` writes a v1 or v2 header for an L4 backend (L4Route.proxyProtocol).
 *
 * UDP listeners never read or write one: PROXY protocol is defined for connections, and a UDP
 * datagram carries its own source address.
 */
import { isIPv4, isIPv6 } from 'node:net'

/** The 12-byte v2 signature: "\r\n\r\n\0\r\nQUIT\n". */
export const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a)
const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20) // "PROXY "
/** Longest v1 line, CRLF included (spec §2.1). */
export const V1_MAX_BYTES = 107
/** A v2 header is 16 bytes plus a 16-bit length. */
export const V2_MAX_BYTES = 16 + 0xffff

/** What a complete header says. `addresses` is undefined when the real connection endpoints apply (LOCAL, UNKNOWN, UNSPEC, UNIX). */
export interface ProxyHeader {
  readonly version: 1 | 2
  readonly addresses?: ProxyAddresses
}

export interface ProxyAddresses {
  readonly family: 'IPv4' | 'IPv6'
  readonly sourceAddress: string
  readonly sourcePort: number
  readonly destinationAddress: string
  readonly destinationPort: number
}

export type ProxyParse =
  /** More bytes are needed to decide. */
  | { readonly kind: 'incomplete' }
  /** The bytes cannot start a PROXY header (optional mode: serve the connection as it is). */
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `length` bytes of header; the connection's own bytes follow. */
  | { readonly kind: 'complete'; readonly length: number; readonly header: ProxyHeader }

const INCOMPLETE: ProxyParse = { kind: 'incomplete' }
const ABSENT: ProxyParse = { kind: 'absent' }

function invalid(reason: string): ProxyParse {
  return { kind: 'invalid', reason }
}

/** Whether buf[0..n) equals sig[0..n) for n = min(lengths). */
function prefixMatches(buf: Uint8Array, sig: Uint8Array): boolean {
  const n = Math.min(buf.length, sig.length)
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false
  return true
}

/** Parse the start of a connection's bytes (all of them so far). Never throws. */
export function parseProxyHeader(buf: Uint8Array): ProxyParse {
  if (buf.length === 0) return INCOMPLETE
  if (prefixMatches(buf, V2_SIGNATURE)) return buf.length < 16 ? INCOMPLETE : parseV2(buf)
  if (prefixMatches(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf)
  return ABSENT
}

// ---------------------------------------------------------------- v1

function parseV1(buf: Uint8Array): ProxyParse {
  const limit = Math.min(buf.length, V1_MAX_BYTES)
  let end = -1
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (buf[i] === 0x0a) {
      end = i
      break
    }
  }
  if (end < 0) return buf.length >= V1_MAX_BYTES ? invalid('v1 header longer than 107 bytes') : INCOMPLETE
  if (buf[end - 1] !== 0x0d) return invalid('v1 header not terminated by CRLF')
  let line = ''
  for (let i = 0; i < end - 1; i++) {
    const c = buf[i]!
    if (c < 0x20 || c > 0x7e) return invalid('v1 header has a non-printable byte')
    line += String.fromCharCode(c)
  }
  const length = end + 1
  const parts = line.split(' ')
  const family = parts[1]
  // "PROXY UNKNOWN" may carry anything after it; the receiver uses the real endpoints.
  if (family === 'UNKNOWN') return { kind: 'complete', length, header: { version: 1 } }
  if (family !== 'TCP4' && family !== 'TCP6') return invalid(`v1 unknown protocol ${JSON.stringify(family ?? '')}`)
  if (parts.length !== 6) return invalid('v1 header needs exactly 4 address fields')
  const [, , source, destination, sourcePort, destinationPort] = parts as [string, string, string, string, string, string]
  const check = family === 'TCP4' ? isIPv4 : isIPv6
  if (!check(source) || !check(destination)) return invalid(`v1 ${family} address is malformed`)
  const sp = parsePort(sourcePort)
  const dp = parsePort(destinationPort)
  if (sp < 0 || dp < 0) return invalid('v1 port is malformed')
  return {
    kind: 'complete',
    length,
    header: {
      version: 1,
      addresses: { family: family === 'TCP4' ? 'IPv4' : 'IPv6', sourceAddress: source, sourcePort: sp, destinationAddress: destination, destinationPort: dp },
    },
  }
}

/** Decimal 0-65535 without sign or leading zeros; -1 otherwise. */
function parsePort(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return -1
  const n = Number(text)
  return n <= 65535 ? n : -1
}

// ---------------------------------------------------------------- v2

function parseV2(buf: Uint8Array): ProxyParse {
  const versionCommand = buf[12]!
  if (versionCommand >> 4 !== 2) return invalid(`v2 version ${versionCommand >> 4} is not 2`)
  const command = versionCommand & 0x0f
  if (command > 1) return invalid(`v2 command ${command} is neither LOCAL nor PROXY`)
  const familyTransport = buf[13]!
  const family = familyTransport >> 4
  const transport = familyTransport & 0x0f
  if (family > 3) return invalid(`v2 address family ${family} is unknown`)
  if (transport > 2) return invalid(`v2 transport ${transport} is unknown`)
  const bodyLength = (buf[14]! << 8) | buf[15]!
  const length = 16 + bodyLength
  if (buf.length < length) return INCOMPLETE
  // LOCAL (health checks from the proxy itself): the real endpoints apply, the block is skipped.
  if (command === 0) return { kind: 'complete', length, header: { version: 2 } }
  if (family === 1) {
    if (bodyLength < 12) return invalid('v2 TCP4 address block shorter than 12 bytes')
    const view = new DataView(buf.buffer, buf.byteOffset + 16, 12)
    return {
      kind: 'complete',
      length,
      header: {
        version: 2,
        addresses: {
          family: 'IPv4',
          sourceAddress: ipv4At(buf, 16),
          destinationAddress: ipv4At(buf, 20),
          sourcePort: view.getUint16(8),
          destinationPort: view.getUint16(10),
        },
      },
    }
  }
  if (family === 2) {
    if (bodyLength < 36) return invalid('v2 TCP6 address block shorter than 36 bytes')
    const view = new DataView(buf.buffer, buf.byteOffset + 16, 36)
    return {
      kind: 'complete',
      length,
      header: {
        version: 2,
        addresses: {
          family: 'IPv6',
          sourceAddress: ipv6At(buf, 16),
          destinationAddress: ipv6At(buf, 32),
          sourcePort: view.getUint16(32),
          destinationPort: view.getUint16(34),
        },
      },
    }
  }
  if (family === 3 && bodyLength < 216) return invalid('v2 UNIX address block shorter than 216 bytes')
  // UNSPEC, or UNIX paths: no IP to report; the real endpoints apply. TLVs are skipped.
  return { kind: 'complete', length, header: { version: 2 } }
}

function ipv4At(buf: Uint8Array, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`
}

/** RFC 5952 text (lower case, longest run of two or more zero groups as "::"); IPv4-mapped as ::ffff:a.b.c.d. */
export function ipv6At(buf: Uint8Array, at: number): string {
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push((buf[at + 2 * i]! << 8) | buf[at + 2 * i + 1]!)
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4At(buf, at + 12)}`
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}

// ---------------------------------------------------------------- incremental reader

export type ReaderResult =
  | { readonly kind: 'incomplete' }
  /** Close the connection without answering. */
  | { readonly kind: 'invalid'; readonly reason: string }
  /** Header read (or, optional mode, absent): `rest` is the connection's own first bytes (may be empty). */
  | { readonly kind: 'done'; readonly header: ProxyHeader | undefined; readonly rest: Uint8Array }

/**
 * Collects a connection's first chunks until its PROXY header is complete. Holds at most one
 * header's worth of bytes (v1 107, v2 16 + its length).
 */
export class ProxyHeaderReader {
  #buffered: Uint8Array | undefined

  constructor(readonly optional: boolean) {}

  feed(chunk: Uint8Array): ReaderResult {
    const buf = this.#buffered === undefined ? chunk : Buffer.concat([this.#buffered, chunk])
    const parsed = parseProxyHeader(buf)
    switch (parsed.kind) {
      case 'incomplete':
        // A copy of its own: the caller's chunk is not ours to keep.
        this.#buffered = this.#buffered === undefined ? Uint8Array.from(buf) : buf
        return { kind: 'incomplete' }
      case 'absent':
        this.#buffered = undefined
        if (this.optional) return { kind: 'done', header: undefined, rest: buf }
        return { kind: 'invalid', reason: 'no PROXY protocol header' }
      case 'invalid':
        this.#buffered = undefined
        return parsed
      case 'complete':
        this.#buffered = undefined
        return { kind: 'done', header: parsed.header, rest: buf.subarray(parsed.length) }
    }
  }
}

// ---------------------------------------------------------------- sending

export interface ProxyEndpoints {
  readonly sourceAddress: string
  readonly sourcePort: number
  readonly destinationAddress: string
  readonly destinationPort: number
}

/** "::ffff:1.2.3.4" → "1.2.3.4", so an IPv4 client on a dual-stack socket is sent as TCP4. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

/**
 * The header an L4 backend gets before any client byte. Source and destination of different
 * families (or not IP at all) are sent as v1 "UNKNOWN" / v2 UNSPEC, which tells the backend to
 * use the connection's own endpoints.
 */
export function buildProxyHeader(version: 'V1' | 'V2', endpoints: ProxyEndpoints): Uint8Array {
  const source = unmapped(endpoints.sourceAddress)
  const destination = unmapped(endpoints.destinationAddress)
  const family = isIPv4(source) && isIPv4(destination) ? 4 : isIPv6(source) && isIPv6(destination) ? 6 : 0
  if (version === 'V1') {
    if (family === 0) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1')
    return Buffer.from(`PROXY TCP${family} ${source} ${destination} ${endpoints.sourcePort} ${endpoints.destinationPort}\r\n`, 'latin1')
  }
  const addressBytes = family === 4 ? 12 : family === 6 ? 36 : 0
  const out = new Uint8Array(16 + addressBytes)
  out.set(V2_SIGNATURE, 0)
  out[12] = 0x21 // version 2, PROXY
  out[13] = family === 4 ? 0x11 : family === 6 ? 0x21 : 0x00
  out[14] = addressBytes >> 8
  out[15] = addressBytes & 0xff
  const view = new DataView(out.buffer)
  if (family === 4) {
    out.set(ipv4Bytes(source), 16)
    out.set(ipv4Bytes(destination), 20)
    view.setUint16(24, endpoints.sourcePort)
    view.setUint16(26, endpoints.destinationPort)
  } else if (family === 6) {
    out.set(ipv6Bytes(source), 16)
    out.set(ipv6Bytes(destination), 32)
    view.setUint16(48, endpoints.sourcePort)
    view.setUint16(50, endpoints.destinationPort)
  }
  return out
}

function ipv4Bytes(address: string): Uint8Array {
  return Uint8Array.from(address.split('.').map(Number))
}

function ipv6Bytes(address: string): Uint8Array {
  const out = new Uint8Array(16)
  let text = address
  // A trailing dotted quad (::ffff:1.2.3.4) fills the last 4 bytes.
  let tail: Uint8Array | undefined
  const lastColon = text.lastIndexOf(':')
  if (text.includes('.', lastColon)) {
    tail = ipv4Bytes(text.slice(lastColon + 1))
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const [head, rest] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined]
  const headGroups = head === '' ? [] : head.split(':')
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':')
  const zeros = 8 - headGroups.length - restGroups.length
  const groups = [...headGroups, ...(rest === undefined ? [] : new Array<string>(zeros).fill('0')), ...restGroups]
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i] ?? '0', 16)
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  }
  if (tail) out.set(tail, 12)
  return out
}
