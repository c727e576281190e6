import { beforeAll, describe, expect, test } from 'bun:test'
import { createServer } from 'node:net'
import * as tls from 'node:tls'
import { parseClientHello } from '../../src/dataplane/l4/client-hello.ts'
import { SniTable } from '../../src/dataplane/l4/sni-table.ts'

/** The first flight a real node:tls client sends (its ClientHello), captured from a raw socket. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const chunks: Buffer[] = []
  const server = createServer((socket) => socket.on('data', (chunk: Buffer) => chunks.push(chunk)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const port = (server.address() as { port: number }).port
  const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options })
  client.on('error', () => {})
  const deadline = Date.now() + 3_000
  while (Date.now() < deadline) {
    const bytes = Buffer.concat(chunks)
    if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt16BE(3)) break
    await Bun.sleep(5)
  }
  client.destroy()
  server.close()
  const bytes = Buffer.concat(chunks)
  return bytes.subarray(0, 5 + bytes.readUInt16BE(3))
}

/** Re-wrap one handshake record's payload into records of at most `size` bytes. */
function refragment(hello: Buffer, size: number): Buffer {
  const payload = hello.subarray(5)
  const records: Buffer[] = []
  for (let offset = 0; offset < payload.length; offset += size) {
    const fragment = payload.subarray(offset, offset + size)
    const header = Buffer.from([0x16, 0x03, 0x01, fragment.length >> 8, fragment.length & 0xff])
    records.push(header, fragment)
  }
  return Buffer.concat(records)
}

let tls13: Buffer
let tls12: Buffer
let noSni: Buffer

beforeAll(async () => {
  tls13 = await captureClientHello({ servername: 'Api.Example.COM' })
  tls12 = await captureClientHello({ servername: 'legacy.example.com', maxVersion: 'TLSv1.2' })
  noSni = await captureClientHello({ servername: '' })
})

describe('parseClientHello', () => {
  test('reads the server name from TLS 1.3 and 1.2 ClientHellos (lower-cased)', () => {
    expect(parseClientHello(tls13)).toEqual({ kind: 'complete', serverName: 'api.example.com' })
    expect(parseClientHello(tls12)).toEqual({ kind: 'complete', serverName: 'legacy.example.com' })
  })

  test('a ClientHello without SNI is complete with no server name', () => {
    expect(parseClientHello(noSni)).toEqual({ kind: 'complete' })
  })

  test('every strict prefix is incomplete, never invalid', () => {
    for (let length = 0; length < tls13.length; length++) {
      expect(parseClientHello(tls13.subarray(0, length)).kind).toBe('incomplete')
    }
  })

  test('a handshake fragmented over several records is reassembled', () => {
    for (const size of [1, 7, 100, 512]) {
      const fragmented = refragment(tls13, size)
      expect(parseClientHello(fragmented)).toEqual({ kind: 'complete', serverName: 'api.example.com' })
      expect(parseClientHello(fragmented.subarray(0, fragmented.length - 1)).kind).toBe('incomplete')
    }
  })

  test('non-TLS input is invalid straight away', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind).toBe('invalid')
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0])).kind).toBe('invalid') // ServerHello
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).kind).toBe('invalid') // empty record
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x7f, 0xff, 0xff])).kind).toBe('invalid') // 8 MB hello
  })

  test('random corruption never throws', () => {
    let seed = 42
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
    const kinds = new Set<string>()
    for (let round = 0; round < 5_000; round++) {
      const mutated = Buffer.from(round % 2 ? tls13 : tls12)
      const flips = 1 + Math.floor(random() * 8)
      for (let i = 0; i < flips; i++) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256)
      const cut = random() < 0.3 ? mutated.subarray(0, Math.floor(random() * mutated.length)) : mutated
      kinds.add(parseClientHello(cut).kind)
    }
    expect([...kinds].sort()).toEqual(['complete', 'incomplete', 'invalid'])
  })
})

describe('SniTable', () => {
  const table = new SniTable([
    { hostnames: ['a.example.com'], route: 'exact-a' },
    { hostnames: ['*.example.com'], route: 'wild' },
    { hostnames: ['*.deep.example.com'], route: 'deeper-wild' },
    { hostnames: ['a.example.com', 'b.example.com'], route: 'later-claims-a' },
    { hostnames: [], route: 'any' },
    { hostnames: [], route: 'later-any' },
  ])

  test('exact beats wildcard; longest wildcard wins; earlier route keeps a contested name', () => {
    expect(table.match('a.example.com')).toBe('exact-a')
    expect(table.match('b.example.com')).toBe('later-claims-a')
    expect(table.match('x.example.com')).toBe('wild')
    expect(table.match('x.y.example.com')).toBe('wild')
    expect(table.match('x.deep.example.com')).toBe('deeper-wild')
  })

  test('the wildcard does not match its own apex; unmatched and missing names fall back to the first catch-all', () => {
    expect(table.match('example.com')).toBe('any')
    expect(table.match('other.test')).toBe('any')
    expect(table.match(undefined)).toBe('any')
  })

  test('without a catch-all route, unknown names match nothing', () => {
    const strict = new SniTable([{ hostnames: ['a.test'], route: 'a' }])
    expect(strict.match('b.test')).toBeUndefined()
    expect(strict.match(undefined)).toBeUndefined()
  })
})
