/**
 * BackendTrafficPolicy `compression`: Accept-Encoding negotiation and eligibility as pure
 * functions, then real sockets (curl --compressed through the data plane, a backend of our own),
 * SSE timing through the compressor, and the shared policy contract (policy.case.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import zlib from 'node:zlib'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { compressibleType, ineligible, negotiate, varyWithAcceptEncoding, weakETag } from '../../src/policy/compression/negotiate.ts'
import { available, codec, compressBody } from '../../src/policy/compression/codecs.ts'
import { compressionRuntime } from '../../src/policy/compression/runtime.ts'
import type { CompressionSpec } from '../../src/policy/compression/spec.ts'
import { compressionFeature, quantityValue } from '../../src/policy/compression/translate.ts'
import { backendTrafficPolicy } from '../../src/policy/backend-traffic/translate.ts'
import { validate } from '../../src/policy/schema.ts'
import type { PolicyIr } from '../../src/policy/kind.ts'
import { PolicyStateRegistry } from '../../src/dataplane/policy-state.ts'
import { startDataplane, type Running } from '../dataplane/harness.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { runPolicyCase, type PathResult } from './policy.case.ts'

const ALL = ['gzip', 'br', 'zstd'] as const

describe('Accept-Encoding negotiation', () => {
  test('no header, empty, identity only: identity', () => {
    expect(negotiate(null, ALL)).toBeUndefined()
    expect(negotiate('', ALL)).toBeUndefined()
    expect(negotiate('identity', ALL)).toBeUndefined()
    expect(negotiate('deflate', ALL)).toBeUndefined()
  })
  test('ties go to the configured order', () => {
    expect(negotiate('gzip, deflate, br, zstd', ALL)).toBe('gzip')
    expect(negotiate('gzip, deflate, br, zstd', ['br', 'gzip'])).toBe('br')
    expect(negotiate('zstd, br', ['gzip', 'br', 'zstd'])).toBe('br')
    expect(negotiate('br', ['gzip'])).toBeUndefined()
  })
  test('q-values: the highest weight wins; q=0 is not acceptable', () => {
    expect(negotiate('gzip;q=0.5, br;q=0.8', ALL)).toBe('br')
    expect(negotiate('gzip;q=1.0, br;q=0.999', ALL)).toBe('gzip')
    expect(negotiate('gzip;q=0, br;q=0', ALL)).toBeUndefined()
    expect(negotiate('GZIP ; Q=0.2', ALL)).toBe('gzip')
    expect(negotiate('gzip;level=1;q=0.3, zstd;q=0.2', ALL)).toBe('gzip')
  })
  test('malformed q drops the entry', () => {
    expect(negotiate('gzip;q=2, br;q=abc', ALL)).toBeUndefined()
    expect(negotiate('gzip;q=0.1234, zstd', ALL)).toBe('zstd')
    expect(negotiate('gzip;q=, br', ALL)).toBe('br')
  })
  test('* covers codings not listed; its own q, and *;q=0 excludes them', () => {
    expect(negotiate('*', ALL)).toBe('gzip')
    expect(negotiate('*', ['zstd', 'gzip'])).toBe('zstd')
    expect(negotiate('gzip;q=0, *', ALL)).toBe('br')
    expect(negotiate('*;q=0', ALL)).toBeUndefined()
    expect(negotiate('br;q=0.5, *;q=0.9', ALL)).toBe('gzip')
    expect(negotiate('br, *;q=0', ALL)).toBe('br')
    expect(negotiate('identity;q=0, *;q=0.1', ['br'])).toBe('br')
  })
  test('identity;q=0 alone cannot be met: identity anyway (no 406)', () => {
    expect(negotiate('identity;q=0', ALL)).toBeUndefined()
  })
  test('x-gzip is gzip', () => {
    expect(negotiate('x-gzip', ALL)).toBe('gzip')
  })
})

describe('what is compressible', () => {
  test('content types', () => {
    for (const t of ['text/html; charset=utf-8', 'text/plain', 'text/css', 'text/event-stream', 'application/json', 'Application/JSON;charset=utf-8', 'application/javascript', 'application/xml', 'image/svg+xml', 'application/problem+json', 'application/atom+xml', 'application/wasm']) {
      expect([t, compressibleType(t)]).toEqual([t, true])
    }
    for (const t of [null, '', 'image/png', 'image/jpeg', 'video/mp4', 'application/octet-stream', 'application/zip', 'application/gzip', 'font/woff2', 'application/pdf']) {
      expect([t, compressibleType(t)]).toEqual([t, false])
    }
  })
  const h = (fields: Record<string, string>) => new Headers({ 'content-type': 'application/json', ...fields })
  test('responses left alone', () => {
    expect(ineligible('GET', 200, h({}), 1024)).toBeUndefined()
    expect(ineligible('GET', 200, h({ 'content-length': '1024' }), 1024)).toBeUndefined()
    expect(ineligible('GET', 200, h({ 'content-length': '1023' }), 1024)).toBe('small')
    expect(ineligible('HEAD', 200, h({}), 1024)).toBe('HEAD')
    expect(ineligible('GET', 204, h({}), 1024)).toBe('no body')
    expect(ineligible('GET', 304, h({}), 1024)).toBe('no body')
    expect(ineligible('GET', 206, h({}), 1024)).toBe('range')
    expect(ineligible('GET', 200, h({ 'content-range': 'bytes 0-9/100' }), 1024)).toBe('range')
    expect(ineligible('GET', 200, h({ 'content-encoding': 'gzip' }), 1024)).toBe('already encoded')
    expect(ineligible('GET', 200, h({ 'content-encoding': 'identity' }), 1024)).toBe('already encoded')
    expect(ineligible('GET', 200, h({ 'cache-control': 'public, no-transform' }), 1024)).toBe('no-transform')
    expect(ineligible('GET', 200, new Headers({ 'content-type': 'image/png' }), 1024)).toBe('content type')
    expect(ineligible('GET', 404, h({}), 1024)).toBeUndefined()
  })
  test('Vary and ETag', () => {
    expect(varyWithAcceptEncoding(null)).toBe('Accept-Encoding')
    expect(varyWithAcceptEncoding('Origin')).toBe('Origin, Accept-Encoding')
    expect(varyWithAcceptEncoding('origin, accept-encoding')).toBeUndefined()
    expect(varyWithAcceptEncoding('*')).toBeUndefined()
    expect(weakETag('"abc"')).toBe('W/"abc"')
    expect(weakETag('W/"abc"')).toBe('W/"abc"')
  })
})

describe('codecs', () => {
  test('this runtime has all three', () => {
    expect(available('Gzip')).toBe(true)
    expect(available('Brotli')).toBe(true)
    expect(available('Zstd')).toBe(true)
  })
  const decode: Record<string, (b: Buffer) => Buffer> = { gzip: zlib.gunzipSync, br: zlib.brotliDecompressSync, zstd: (b) => (zlib as any).zstdDecompressSync(b) }
  for (const type of ['Gzip', 'Brotli', 'Zstd'] as const) {
    test(`${type}: whole and streamed bodies round-trip; each streamed chunk decodes on its own arrival`, async () => {
      const c = codec(type, undefined)
      const text = JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ i, s: 'x'.repeat(i % 17) })))
      const bytes = new TextEncoder().encode(text)
      // Arrived whole with its length: bytes, not a stream.
      const whole = await compressBody(new Blob([bytes]).stream(), c, bytes.byteLength)
      expect(whole).toBeInstanceOf(Uint8Array)
      expect(decode[c.coding]!(Buffer.from(whole as Uint8Array)).toString()).toBe(text)
      // Known length, first piece short of it: a stream that starts with that piece.
      const halves = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes.subarray(0, 3000))
          controller.enqueue(bytes.subarray(3000))
          controller.close()
        },
      })
      const split = await compressBody(halves, c, bytes.byteLength)
      expect(split).toBeInstanceOf(ReadableStream)
      expect(decode[c.coding]!(Buffer.from(await new Response(split as ReadableStream).arrayBuffer())).toString()).toBe(text)
      // Streamed: three chunks; after each one, everything so far decodes (flushed, not held back).
      const parts = [bytes.subarray(0, 1000), bytes.subarray(1000, 5000), bytes.subarray(5000)]
      let push!: (b: Uint8Array | null) => void
      const source = new ReadableStream<Uint8Array>({
        start(controller) {
          push = (b) => (b ? controller.enqueue(b) : controller.close())
        },
      })
      const reader = (compressBody(source, c, undefined) as ReadableStream<Uint8Array>).getReader()
      const got: Uint8Array[] = []
      let seen = 0
      for (const part of parts) {
        push(part)
        const { value } = await reader.read()
        got.push(value!)
        seen += part.byteLength
        const partial = partialDecode(c.coding, Buffer.concat(got))
        expect(partial).toBe(text.slice(0, seen))
      }
      push(null)
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        got.push(value)
      }
      expect(decode[c.coding]!(Buffer.concat(got)).toString()).toBe(text)
    })
  }
})

/** Decode a stream prefix (no end marker yet): the sync APIs with a flush that tolerates the missing end. */
function partialDecode(coding: string, bytes: Buffer): string {
  if (coding === 'gzip') return zlib.gunzipSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString()
  if (coding === 'br') return zlib.brotliDecompressSync(bytes, { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }).toString()
  return (zlib as any).zstdDecompressSync(bytes, { finishFlush: zlib.constants.ZSTD_e_flush }).toString()
}

describe('translation (BackendTrafficPolicy)', () => {
  const targetRefs = [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'web' }]
  const problems = (spec: Record<string, unknown>) => {
    const p = validate(backendTrafficPolicy.schema, { targetRefs, ...spec }, 'spec')
    return [...p.errors, ...p.unsupported.map((u) => `${u} unsupported`)]
  }
  test('quantities', () => {
    expect(quantityValue(30)).toBe(30)
    expect(quantityValue('2Ki')).toBe(2048)
    expect(quantityValue('10k')).toBe(10000)
    expect(quantityValue('1Mi')).toBe(1048576)
    expect(problems({ compressor: [{ type: 'Gzip', minContentLength: '2Ki' }] })).toEqual([])
    expect(problems({ compressor: [{ type: 'Gzip', minContentLength: 512 }] })).toEqual([])
    expect(problems({ compressor: [{ type: 'Gzip', minContentLength: '1.5Ki' }] })).toHaveLength(1)
    expect(problems({ compressor: [{ type: 'Gzip', minContentLength: -1 }] })).toHaveLength(1)
  })
  test('compressor wins over compression; order kept; a repeated type counts once; levels', () => {
    const f = compressionFeature({
      compression: [{ type: 'Gzip' }],
      compressor: [{ type: 'Zstd', zstd: { compressionLevel: 7 } }, { type: 'Brotli', brotli: { quality: 4 }, minContentLength: '4Ki' }, { type: 'Zstd' }],
    })
    expect(f?.spec).toEqual({ encodings: [{ type: 'Zstd', minContentLength: 1024, level: 7 }, { type: 'Brotli', minContentLength: 4096, level: 4 }] })
    expect(compressionFeature({ compression: [{ type: 'Gzip' }] })?.spec).toEqual({ encodings: [{ type: 'Gzip', minContentLength: 1024 }] })
    expect(compressionFeature({ compressor: [] })).toBeUndefined()
    expect(compressionFeature({})).toBeUndefined()
  })
  test('schema: a block for another type, an unknown type, unsupported tuning', () => {
    expect(problems({ compressor: [{ type: 'Brotli', gzip: {} }] })).toEqual(['spec.compressor[0]: The gzip configuration is only allowed when the type is Gzip.'])
    expect(problems({ compressor: [{ type: 'Deflate' }] })).toHaveLength(1)
    expect(problems({ compressor: [{ type: 'Gzip', gzip: { memoryLevel: 5 } }] })).toEqual(['spec.compressor[0].gzip.memoryLevel unsupported'])
    expect(problems({ compressor: [{ type: 'Brotli', brotli: { quality: 12 } }] })).toHaveLength(1)
  })
})

describe('compiled policy', () => {
  test('is not head-only: a rule with compression leaves the direct path', () => {
    const ir: PolicyIr<'compression'> = { name: 'compression', id: 'x', spec: { encodings: [{ type: 'Gzip', minContentLength: 1024 }] } }
    const compiled = compressionRuntime.compile(ir, { pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined })
    expect(compiled.headOnly).toBe(false)
    expect(typeof compiled.wrapResponseBody).toBe('function')
  })
})

// ---------------------------------------------------------------- real sockets

const JSON_BODY = JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b'] })))
const PNG = new Uint8Array(8192).map((_, i) => (i * 7919) % 256)
const SSE_EVENTS = 4
const SSE_GAP_MS = 500

interface Backend {
  readonly port: number
  /** performance.now() when each SSE event was written. */
  readonly sseSent: number[]
  /** Bytes /big produced so far (it produces only when read). */
  readonly big: { produced: number; cancelled: boolean }
  stop(): Promise<void>
}

/** 64 KiB of random hex: compresses to about half with gzip (its 32 KiB window never sees the repeat). */
const HEX_CHUNK = new TextEncoder().encode(Array.from(crypto.getRandomValues(new Uint8Array(32 * 1024)), (b) => b.toString(16).padStart(2, '0')).join(''))
const BIG_BYTES = 512 * 1024 * 1024

function startBackend(): Backend {
  const sseSent: number[] = []
  const big = { produced: 0, cancelled: false }
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    fetch(req) {
      const url = new URL(req.url)
      const json = { 'content-type': 'application/json', etag: '"v1"', 'accept-ranges': 'bytes' }
      switch (url.pathname.replace(/^\/plain/, '')) {
        case '/json':
          return new Response(JSON_BODY, { headers: json })
        case '/small':
          return new Response('{"ok":true}', { headers: json })
        case '/png':
          return new Response(PNG, { headers: { 'content-type': 'image/png' } })
        case '/encoded':
          return new Response(zlib.gzipSync(JSON_BODY), { headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } })
        case '/no-content':
          return new Response(null, { status: 204 })
        case '/not-modified':
          return new Response(null, { status: 304, headers: { etag: '"v1"', 'content-type': 'application/json' } })
        case '/range':
          return new Response(JSON_BODY.slice(0, 2000), { status: 206, headers: { 'content-type': 'application/json', 'content-range': `bytes 0-1999/${JSON_BODY.length}` } })
        case '/vary':
          return new Response(JSON_BODY, { headers: { 'content-type': 'text/html', vary: 'Origin' } })
        case '/stream': {
          // Unknown length, small pieces: compressed even though each is tiny.
          let n = 0
          return new Response(
            new ReadableStream({
              async pull(c) {
                c.enqueue(new TextEncoder().encode(`line ${n}\n`))
                if (++n === 20) c.close()
                else await Bun.sleep(2)
              },
            }),
            { headers: { 'content-type': 'text/plain' } },
          )
        }
        case '/big':
          big.produced = 0
          big.cancelled = false
          return new Response(
            new ReadableStream(
              {
                pull(c) {
                  c.enqueue(HEX_CHUNK)
                  big.produced += HEX_CHUNK.byteLength
                  if (big.produced >= BIG_BYTES) c.close()
                },
                cancel() {
                  big.cancelled = true
                },
              },
              { highWaterMark: 0 },
            ),
            { headers: { 'content-type': 'text/plain' } },
          )
        case '/broken': {
          // Some text, then the backend dies mid-body.
          let n = 0
          return new Response(
            new ReadableStream({
              async pull(c) {
                if (n++ < 3) {
                  c.enqueue(new TextEncoder().encode(`part ${n} ${'y'.repeat(2000)}\n`))
                  await Bun.sleep(5)
                } else c.error(new Error('backend died'))
              },
            }),
            { headers: { 'content-type': 'text/plain' } },
          )
        }
        case '/sse': {
          sseSent.length = 0
          let n = 0
          return new Response(
            new ReadableStream({
              async pull(c) {
                if (n > 0) await Bun.sleep(SSE_GAP_MS)
                sseSent.push(performance.now())
                c.enqueue(new TextEncoder().encode(`id: ${n}\ndata: event ${n} ${'x'.repeat(40)}\n\n`))
                if (++n === SSE_EVENTS) c.close()
              },
            }),
            { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } },
          )
        }
      }
      return new Response('not found', { status: 404 })
    },
  })
  return { port: server.port!, sseSent, big, stop: () => server.stop(true) }
}

interface Curl {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
  /** Bytes on the wire (compressed). */
  readonly wire: number
}

/** curl with a body on stdout, the response head on a file, the wire size on stderr. */
async function curl(url: string, args: string[] = []): Promise<Curl> {
  const headFile = join(tmpdir(), `portico-compression-${process.pid}-${Math.random().toString(36).slice(2)}.head`)
  const p = Bun.spawn(['curl', '-sS', '-D', headFile, '-w', '%{stderr}%{size_download}', ...args, url], { stdout: 'pipe', stderr: 'pipe' })
  const [body, wire] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()])
  expect(await p.exited).toBe(0)
  const out = readFileSync(headFile, 'latin1')
  rmSync(headFile)
  const lines = out.split('\r\n').filter((l) => l !== '')
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers, body, wire: Number(wire) }
}

function compressionIr(spec: CompressionSpec, id = 'backendtrafficpolicy/test/c#compression'): PolicyIr<'compression'> {
  return { name: 'compression', id, spec }
}

describe('through the data plane (curl)', () => {
  let backend: Backend
  let gw: Running
  beforeAll(async () => {
    backend = startBackend()
    const all = compressionIr({ encodings: [{ type: 'Brotli', minContentLength: 1024 }, { type: 'Gzip', minContentLength: 1024 }, { type: 'Zstd', minContentLength: 1024 }] })
    gw = await startDataplane(
      simple(
        0,
        [
          rule({ match: { path: { type: 'PathPrefix', value: '/plain' } }, action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'p1' }, filters: [] }] } }),
          rule({ policies: [all] }),
        ],
        [pool('p1', [backend.port])],
      ),
    )
  })
  afterAll(async () => {
    await gw.stop()
    await backend.stop()
  })

  test('the rule with compression is not direct', () => {
    const rules = gw.dp.active.current!.ports.get(0)!.router.listeners[0]!.catchAll!.rules.rules
    expect(rules.map((r) => r.direct)).toEqual([true, false])
  })

  for (const [accept, coding] of [
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['zstd', 'zstd'],
    ['gzip, deflate, br, zstd', 'br'],
    ['gzip;q=1, br;q=0.5', 'gzip'],
  ] as const) {
    test(`curl --compressed, Accept-Encoding: ${accept} → ${coding}; body matches the backend's`, async () => {
      const r = await curl(`${gw.base}/json`, ['--compressed', '-H', `Accept-Encoding: ${accept}`])
      expect(r.status).toBe(200)
      expect(r.headers['content-encoding']).toBe(coding)
      // The compressed length when the body arrived whole, else none (chunked).
      if (r.headers['content-length'] !== undefined) expect(Number(r.headers['content-length'])).toBe(r.wire)
      expect(r.headers['accept-ranges']).toBeUndefined()
      expect(r.headers.vary).toBe('Accept-Encoding')
      expect(r.headers.etag).toBe('W/"v1"')
      expect(r.body).toBe(JSON_BODY)
      expect(r.wire).toBeLessThan(JSON_BODY.length / 4)
    })
  }

  test('no Accept-Encoding: identity, but Vary says it could differ; ETag and length kept', async () => {
    const r = await curl(`${gw.base}/json`)
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.vary).toBe('Accept-Encoding')
    expect(r.headers.etag).toBe('"v1"')
    expect(r.headers['content-length']).toBe(String(JSON_BODY.length))
    expect(r.body).toBe(JSON_BODY)
  })

  test('the same route without the policy: untouched', async () => {
    const r = await curl(`${gw.base}/plain/json`, ['--compressed'])
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.vary).toBeUndefined()
  })

  test('a body below the minimum is untouched', async () => {
    const r = await curl(`${gw.base}/small`, ['--compressed'])
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers.vary).toBeUndefined()
    expect(r.body).toBe('{"ok":true}')
    expect(r.headers['content-length']).toBe('11')
  })

  test('a type that does not compress is untouched', async () => {
    const r = await curl(`${gw.base}/png`, ['--compressed'])
    expect(r.headers['content-encoding']).toBeUndefined()
    expect(r.headers['content-length']).toBe(String(PNG.length))
    expect(r.wire).toBe(PNG.length)
  })

  test('never twice: an already encoded body passes as it is', async () => {
    const raw = await curl(`${gw.base}/encoded`, ['-H', 'Accept-Encoding: gzip, br'])
    expect(raw.headers['content-encoding']).toBe('gzip')
    const r = await curl(`${gw.base}/encoded`, ['--compressed'])
    expect(r.body).toBe(JSON_BODY)
  })

  test('HEAD, 204, 304 and 206 are untouched', async () => {
    const head = await curl(`${gw.base}/json`, ['-I', '-H', 'Accept-Encoding: gzip'])
    expect(head.headers['content-encoding']).toBeUndefined()
    expect(head.headers['content-length']).toBe(String(JSON_BODY.length))
    const none = await curl(`${gw.base}/no-content`, ['--compressed'])
    expect(none.status).toBe(204)
    expect(none.headers['content-encoding']).toBeUndefined()
    const nm = await curl(`${gw.base}/not-modified`, ['--compressed'])
    expect(nm.status).toBe(304)
    expect(nm.headers['content-encoding']).toBeUndefined()
    const range = await curl(`${gw.base}/range`, ['--compressed'])
    expect(range.status).toBe(206)
    expect(range.headers['content-encoding']).toBeUndefined()
    expect(range.body).toBe(JSON_BODY.slice(0, 2000))
  })

  test('an existing Vary is extended', async () => {
    const r = await curl(`${gw.base}/vary`, ['--compressed'])
    expect(r.headers.vary).toBe('Origin, Accept-Encoding')
    expect(r.body).toBe(JSON_BODY)
  })

  test('a streamed body of unknown length is compressed', async () => {
    const r = await curl(`${gw.base}/stream`, ['--compressed', '-H', 'Accept-Encoding: gzip'])
    expect(r.headers['content-encoding']).toBe('gzip')
    expect(r.body).toBe(Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join(''))
  })

  test('a backend that dies midway: the compressed body fails too (never a clean, truncated end)', async () => {
    const p = Bun.spawn(['curl', '-sS', '--compressed', '-H', 'Accept-Encoding: gzip', '-o', '/dev/null', `${gw.base}/broken`], { stdout: 'ignore', stderr: 'pipe' })
    const err = await new Response(p.stderr).text()
    expect(await p.exited).not.toBe(0)
    expect(err).toMatch(/curl: \((18|56|23|61|92)\)/)
  })

  test('backpressure: a client that stops reading stops the backend; nothing piles up in between', async () => {
    const plain = process.env.PLAIN_BIG === '1'
    const socket = connect(gw.port, '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    let received = 0
    const firstBytes = new Promise<void>((resolve) => socket.once('data', () => resolve()))
    socket.on('data', (d: Buffer) => (received += d.length))
    socket.write(`GET ${plain ? '/plain' : ''}/big HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n`)
    await firstBytes
    socket.pause()
    await Bun.sleep(1500)
    const stalledAt = backend.big.produced
    await Bun.sleep(1000)
    const later = backend.big.produced
    if (process.env.COMPRESSION_DEBUG) console.log('backpressure: produced', stalledAt, 'then', later, 'client got', received)
    // Socket buffers on the way (client, front, loopback link, upstream) hold some megabytes; the
    // rest of the 512 MiB is never produced while the client does not read.
    expect(stalledAt).toBeLessThan(64 * 1024 * 1024)
    expect(later - stalledAt).toBeLessThanOrEqual(HEX_CHUNK.byteLength * 2)
    // Reading again resumes the flow.
    socket.resume()
    await Bun.sleep(500)
    expect(backend.big.produced).toBeGreaterThan(later)
    socket.destroy()
    for (let i = 0; i < 50 && !backend.big.cancelled; i++) await Bun.sleep(50)
    expect(backend.big.cancelled).toBe(true)
    expect(received).toBeGreaterThan(0)
  })

  for (const coding of ['gzip', 'br', 'zstd']) {
    test(`SSE through ${coding}: each event arrives as it is sent`, async () => {
      const p = Bun.spawn(['curl', '-sSN', '--compressed', '-H', `Accept-Encoding: ${coding}`, `${gw.base}/sse`], { stdout: 'pipe' })
      const arrived: number[] = []
      let text = ''
      const decoder = new TextDecoder()
      for await (const chunk of p.stdout) {
        const now = performance.now()
        text += decoder.decode(chunk, { stream: true })
        const events = text.split('\n\n').length - 1
        while (arrived.length < events) arrived.push(now)
      }
      expect(await p.exited).toBe(0)
      expect(arrived.length).toBe(SSE_EVENTS)
      expect(text).toBe(Array.from({ length: SSE_EVENTS }, (_, n) => `id: ${n}\ndata: event ${n} ${'x'.repeat(40)}\n\n`).join(''))
      const lags = arrived.map((t, i) => t - backend.sseSent[i]!)
      if (process.env.COMPRESSION_DEBUG) console.log(coding, lags.map((l) => l.toFixed(1)).join(" "))
      // Each event well within the gap after the backend wrote it: not held back until the next one
      // (which would show as a lag of a whole gap). Loose bound: the machines here are shared.
      for (const lag of lags) expect(lag).toBeLessThan(SSE_GAP_MS / 2)
    })
  }
})

// ---------------------------------------------------------------- the shared contract

runPolicyCase({
  name: 'compression',
  variants: [
    {
      label: 'Gzip, Brotli (default minimum)',
      spec: { encodings: [{ type: 'Gzip', minContentLength: 1024 }, { type: 'Brotli', minContentLength: 1024 }] },
      requests: [
        { name: 'a small JSON answer passes (below the minimum)', headers: { 'accept-encoding': 'gzip' }, expect: (r: PathResult) => expect(r.status).toBe(200) },
        { name: 'no Accept-Encoding', expect: (r: PathResult) => expect(r.status).toBe(200) },
      ],
    },
    {
      label: 'Zstd, minContentLength 1: the echo is compressed on the pipeline and decoded by the client',
      spec: { encodings: [{ type: 'Zstd', minContentLength: 1 }, { type: 'Gzip', minContentLength: 1 }] },
      requests: [
        { name: 'gzip', headers: { 'accept-encoding': 'gzip' }, expect: (r: PathResult) => expect(r.status).toBe(200) },
        { name: 'zstd preferred', headers: { 'accept-encoding': 'gzip, zstd' }, expect: (r: PathResult) => expect(r.status).toBe(200) },
        { name: 'HEAD', method: 'HEAD', headers: { 'accept-encoding': 'gzip' }, expect: (r: PathResult) => expect(r.status).toBe(200) },
      ],
    },
  ],
})
