import { describe, expect, test } from 'bun:test'
import { buildProxyHeader, parseProxyHeader, ProxyHeaderReader, V2_SIGNATURE } from '../../src/dataplane/proxy-protocol.ts'

const text = (s: string) => Buffer.from(s, 'latin1')
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')

/** v2 header bytes: signature, ver/cmd, fam, length, body. */
function v2(verCmd: number, fam: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + body.length)
  out.set(V2_SIGNATURE)
  out[12] = verCmd
  out[13] = fam
  out[14] = body.length >> 8
  out[15] = body.length & 0xff
  out.set(body, 16)
  return out
}

/** Feed `bytes` to a reader in pieces of `size`; the last result. */
function feedInPieces(reader: ProxyHeaderReader, bytes: Uint8Array, size: number) {
  let result: ReturnType<ProxyHeaderReader['feed']> = { kind: 'incomplete' }
  for (let i = 0; i < bytes.length; i += size) {
    result = reader.feed(Uint8Array.from(bytes.subarray(i, i + size)))
    if (result.kind !== 'incomplete') return { result, at: i + size }
  }
  return { result, at: bytes.length }
}

describe('PROXY protocol v1', () => {
  test('TCP4', () => {
    const bytes = text('PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n')
    const parsed = parseProxyHeader(bytes)
    expect(parsed).toEqual({
      kind: 'complete',
      length: 44,
      header: { version: 1, addresses: { family: 'IPv4', sourceAddress: '203.0.113.7', sourcePort: 56324, destinationAddress: '192.0.2.1', destinationPort: 443 } },
    })
  })

  test('TCP6', () => {
    const parsed = parseProxyHeader(text('PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n'))
    expect(parsed).toMatchObject({ kind: 'complete', header: { addresses: { family: 'IPv6', sourceAddress: '2001:db8::7', sourcePort: 65535, destinationPort: 0 } } })
  })

  test('UNKNOWN, with or without addresses, uses the real endpoints', () => {
    expect(parseProxyHeader(text('PROXY UNKNOWN\r\n'))).toEqual({ kind: 'complete', length: 15, header: { version: 1 } })
    expect(parseProxyHeader(text('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'))).toMatchObject({ kind: 'complete', header: { version: 1 } })
  })

  test('the longest legal header (107 bytes) is accepted', () => {
    const line = 'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'
    expect(line.length).toBe(104)
    expect(parseProxyHeader(text(line))).toMatchObject({ kind: 'complete', length: 104 })
    const padded = `PROXY UNKNOWN ${'x'.repeat(107 - 16)}\r\n`
    expect(padded.length).toBe(107)
    expect(parseProxyHeader(text(padded))).toMatchObject({ kind: 'complete', length: 107 })
  })

  test('no CRLF within 107 bytes is invalid', () => {
    expect(parseProxyHeader(text(`PROXY UNKNOWN ${'x'.repeat(100)}`))).toEqual({ kind: 'invalid', reason: 'v1 header longer than 107 bytes' })
    expect(parseProxyHeader(text('PROXY TCP4 1.2.3.4'))).toEqual({ kind: 'incomplete' })
  })

  test.each([
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', 'CRLF'],
    ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', 'protocol'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', '4 address'],
    ['PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', 'address fields'],
    ['PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', 'malformed'],
    ['PROXY TCP4 ::1 5.6.7.8 1 2\r\n', 'malformed'],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', 'malformed'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', 'port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', 'port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n', 'non-printable'],
  ])('rejects %j', (line, reason) => {
    const parsed = parseProxyHeader(text(line))
    expect(parsed.kind).toBe('invalid')
    expect((parsed as { reason: string }).reason).toContain(reason)
  })
})

describe('PROXY protocol v2', () => {
  test('TCP4 PROXY, byte exact', () => {
    const bytes = hex('0d0a0d0a000d0a515549540a 21 11 000c cb007107 c0000201 dc04 01bb')
    expect(parseProxyHeader(bytes)).toEqual({
      kind: 'complete',
      length: 28,
      header: { version: 2, addresses: { family: 'IPv4', sourceAddress: '203.0.113.7', sourcePort: 56324, destinationAddress: '192.0.2.1', destinationPort: 443 } },
    })
  })

  test('TCP6 PROXY', () => {
    const body = hex('20010db8000000000000000000000007 20010db8000000000000000000000001 1f90 0050')
    const parsed = parseProxyHeader(v2(0x21, 0x21, body))
    expect(parsed).toEqual({
      kind: 'complete',
      length: 52,
      header: { version: 2, addresses: { family: 'IPv6', sourceAddress: '2001:db8::7', sourcePort: 8080, destinationAddress: '2001:db8::1', destinationPort: 80 } },
    })
  })

  test('IPv6 text follows RFC 5952', () => {
    const cases: [string, string][] = [
      ['00000000000000000000000000000001', '::1'],
      ['00000000000000000000000000000000', '::'],
      ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
      ['20010db8000100000001000000000001', '2001:db8:1:0:1::1'],
      ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
      ['00000000000000000000ffffcb007107', '::ffff:203.0.113.7'],
      ['fe800000000000000000000000000000', 'fe80::'],
    ]
    for (const [address, expected] of cases) {
      const parsed = parseProxyHeader(v2(0x21, 0x21, hex(`${address}${address}00010002`)))
      expect(parsed).toMatchObject({ header: { addresses: { sourceAddress: expected } } })
    }
  })

  test('LOCAL uses the real endpoints and skips its block', () => {
    expect(parseProxyHeader(v2(0x20, 0x00, new Uint8Array(0)))).toEqual({ kind: 'complete', length: 16, header: { version: 2 } })
    expect(parseProxyHeader(v2(0x20, 0x11, new Uint8Array(12)))).toEqual({ kind: 'complete', length: 28, header: { version: 2 } })
  })

  test('UNSPEC and UNIX carry no IP', () => {
    expect(parseProxyHeader(v2(0x21, 0x00, new Uint8Array(0)))).toEqual({ kind: 'complete', length: 16, header: { version: 2 } })
    expect(parseProxyHeader(v2(0x21, 0x31, new Uint8Array(216)))).toEqual({ kind: 'complete', length: 232, header: { version: 2 } })
  })

  test('TLVs after the addresses are skipped', () => {
    const tlv = hex('04 0003 616263 01 0002 6832') // NOOP-ish type 4, ALPN "h2"
    const body = new Uint8Array(12 + tlv.length)
    body.set(hex('0a000001 0a000002 0001 0002'))
    body.set(tlv, 12)
    const bytes = v2(0x21, 0x11, body)
    expect(parseProxyHeader(bytes)).toMatchObject({ kind: 'complete', length: bytes.length, header: { addresses: { sourceAddress: '10.0.0.1' } } })
  })

  test.each([
    [v2(0x11, 0x11, new Uint8Array(12)), 'version'],
    [v2(0x22, 0x11, new Uint8Array(12)), 'command'],
    [v2(0x21, 0x41, new Uint8Array(12)), 'family'],
    [v2(0x21, 0x13, new Uint8Array(12)), 'transport'],
    [v2(0x21, 0x11, new Uint8Array(11)), 'shorter than 12'],
    [v2(0x21, 0x21, new Uint8Array(35)), 'shorter than 36'],
    [v2(0x21, 0x31, new Uint8Array(200)), 'shorter than 216'],
  ])('rejects a bad header (%#: %s)', (bytes, reason) => {
    const parsed = parseProxyHeader(bytes)
    expect(parsed.kind).toBe('invalid')
    expect((parsed as { reason: string }).reason).toContain(reason)
  })

  test('waits for the whole declared length', () => {
    const bytes = v2(0x21, 0x11, new Uint8Array(100))
    for (let n = 1; n < bytes.length; n++) expect(parseProxyHeader(bytes.subarray(0, n)).kind).toBe('incomplete')
    expect(parseProxyHeader(bytes).kind).toBe('complete')
  })
})

describe('detection and the incremental reader', () => {
  test('what is not a header is absent after at most 12 bytes', () => {
    expect(parseProxyHeader(text('GET / HTTP/1.1\r\n')).kind).toBe('absent')
    expect(parseProxyHeader(text('P')).kind).toBe('incomplete')
    expect(parseProxyHeader(text('POST')).kind).toBe('absent')
    expect(parseProxyHeader(hex('16030100')).kind).toBe('absent') // TLS ClientHello
    // HTTP allows empty lines before a request: CRLF CRLF is a prefix of the v2 signature until byte 5.
    expect(parseProxyHeader(text('\r\n\r\n')).kind).toBe('incomplete')
    expect(parseProxyHeader(text('\r\n\r\nGET')).kind).toBe('absent')
    expect(parseProxyHeader(text('PROXY')).kind).toBe('incomplete')
    expect(parseProxyHeader(text('PROXYX')).kind).toBe('absent')
  })

  test('v1 split into one-byte writes', () => {
    const bytes = text('PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n\r\n')
    const reader = new ProxyHeaderReader(false)
    const { result, at } = feedInPieces(reader, bytes, 1)
    expect(at).toBe(44)
    expect(result).toMatchObject({ kind: 'done', header: { addresses: { sourceAddress: '203.0.113.7' } } })
    expect((result as { rest: Uint8Array }).rest.length).toBe(0)
  })

  test('v2 split into 3-byte writes; the rest of the last chunk comes back', () => {
    const header = hex('0d0a0d0a000d0a515549540a 21 11 000c cb007107 c0000201 dc04 01bb')
    const bytes = Buffer.concat([header, text('hello')])
    const { result } = feedInPieces(new ProxyHeaderReader(false), bytes, 3)
    // 28 bytes of header: the chunk 27..30 carries 1 header byte and "he".
    expect(result).toMatchObject({ kind: 'done', header: { version: 2 } })
    expect(Buffer.from((result as { rest: Uint8Array }).rest).toString()).toBe('he')
  })

  test('required: a plain connection is invalid; optional: passed through whole', () => {
    expect(new ProxyHeaderReader(false).feed(text('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'invalid', reason: 'no PROXY protocol header' })
    const optional = new ProxyHeaderReader(true)
    expect(optional.feed(text('\r\n'))).toEqual({ kind: 'incomplete' })
    const result = optional.feed(text('GET / HTTP/1.1\r\n'))
    expect(result).toMatchObject({ kind: 'done', header: undefined })
    expect(Buffer.from((result as { rest: Uint8Array }).rest).toString()).toBe('\r\nGET / HTTP/1.1\r\n')
  })

  test('optional mode still rejects a malformed header', () => {
    expect(new ProxyHeaderReader(true).feed(text('PROXY TCP9 x\r\n')).kind).toBe('invalid')
  })

  test('garbage and too long', () => {
    expect(new ProxyHeaderReader(false).feed(new Uint8Array(200).fill(0xff)).kind).toBe('invalid')
    const reader = new ProxyHeaderReader(false)
    const { result } = feedInPieces(reader, text(`PROXY TCP4 ${'1'.repeat(200)}`), 10)
    expect(result).toEqual({ kind: 'invalid', reason: 'v1 header longer than 107 bytes' })
  })
})

describe('building headers for backends', () => {
  const v4 = { sourceAddress: '203.0.113.7', sourcePort: 56324, destinationAddress: '192.0.2.1', destinationPort: 443 }

  test('v1 TCP4 and TCP6', () => {
    expect(Buffer.from(buildProxyHeader('V1', v4)).toString()).toBe('PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n')
    const v6 = { sourceAddress: '2001:db8::7', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 }
    expect(Buffer.from(buildProxyHeader('V1', v6)).toString()).toBe('PROXY TCP6 2001:db8::7 ::1 1 2\r\n')
  })

  test('v2 TCP4 byte exact', () => {
    expect(Buffer.from(buildProxyHeader('V2', v4)).toString('hex')).toBe('0d0a0d0a000d0a515549540a2111000ccb007107c0000201dc0401bb')
  })

  test('IPv4-mapped addresses go as TCP4; mixed families as UNKNOWN / UNSPEC', () => {
    const mapped = { ...v4, sourceAddress: '::ffff:203.0.113.7' }
    expect(Buffer.from(buildProxyHeader('V1', mapped)).toString()).toBe('PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n')
    const mixed = { ...v4, destinationAddress: '2001:db8::1' }
    expect(Buffer.from(buildProxyHeader('V1', mixed)).toString()).toBe('PROXY UNKNOWN\r\n')
    expect(Buffer.from(buildProxyHeader('V2', mixed)).toString('hex')).toBe('0d0a0d0a000d0a515549540a21000000')
  })

  test('round trips through the parser', () => {
    for (const endpoints of [
      v4,
      { sourceAddress: '2001:db8:0:1::1', sourcePort: 65535, destinationAddress: 'fe80::1:2', destinationPort: 0 },
      { sourceAddress: '::ffff:1.2.3.4', sourcePort: 5, destinationAddress: '::1', destinationPort: 6 },
      { sourceAddress: '1:2:3:4:5:6:7:8', sourcePort: 5, destinationAddress: '::', destinationPort: 6 },
    ]) {
      for (const version of ['V1', 'V2'] as const) {
        const parsed = parseProxyHeader(buildProxyHeader(version, endpoints))
        expect(parsed.kind).toBe('complete')
        const addresses = (parsed as { header: { addresses?: Record<string, unknown> } }).header.addresses
        if (endpoints.sourceAddress.startsWith('::ffff:')) {
          expect(addresses).toBeUndefined() // mixed: 1.2.3.4 and ::1
          continue
        }
        expect(addresses).toMatchObject(endpoints)
      }
    }
  })
})
