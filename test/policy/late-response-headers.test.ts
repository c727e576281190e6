/**
 * ClientTrafficPolicy headers.lateResponseHeaders (issue 19: the backend's Server header
 * disclosed its software): the edit reaches every response of the port on real sockets — the
 * front's direct path and the pipeline, HTTP/1.1 plain and over TLS, h2, the gateway's own
 * answers — and without the policy the backend's fields pass unchanged.
 */
import { createHash } from 'node:crypto'
import net from 'node:net'
import * as tls from 'node:tls'
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpListener, HttpPort } from '../../src/ir/types.ts'
import type { ResponseHeaderEdits } from '../../src/policy/kind.ts'
import { clientTrafficPolicy } from '../../src/policy/client-traffic/translate.ts'
import { editResponseHead } from '../../src/policy/client-traffic/response-headers.ts'
import { validate } from '../../src/policy/schema.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { forwardTo, listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'

const cert = makeCertificate(['late.test'])
const EDITS: ResponseHeaderEdits = { set: [['Server', 'portico']], add: [['X-Frame-Options', 'DENY']], remove: ['x-powered-by'] }

/** A backend answering every request with fields in mixed case, the way real servers disclose themselves. */
let backend: net.Server
let backendPort: number
/** A port nothing listens on: the front's direct path answers 502 itself. */
let deadPort: number
let plain: HttpDataplane
let secure: HttpDataplane

function listeners(): HttpListener {
  const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
  // /piped retries: the rule leaves the front's direct path for the pipeline (and sets a field of its own).
  const piped = rule({ match: prefix('/piped'), retry: { codes: [503], attempts: 1, backoffMs: 0 }, filters: [{ type: 'ResponseHeaderModifier', set: [['x-piped', '1']], add: [], remove: [] }] })
  return listener([vhost('*', [piped, rule({ match: prefix('/none'), action: { kind: 'respond', status: 204 } }), rule({ match: prefix('/down'), action: forwardTo('dead') }), rule({ match: prefix('/') })])], undefined)
}

function plan(protocol: 'HTTP' | 'HTTPS', edits: ResponseHeaderEdits | undefined, revision: number) {
  const l = protocol === 'HTTPS' ? { ...listeners(), tls: { certificates: [{ certPem: cert.certPem, keyPem: cert.keyPem }] } } : listeners()
  const p: HttpPort = port(0, [l], protocol)
  return snapshot([edits ? { ...p, connection: { lateResponseHeaders: edits } } : p], [pool('p1', [backendPort]), pool('dead', [deadPort])], revision)
}

beforeAll(async () => {
  backend = net.createServer((socket) => {
    let pending = ''
    socket.on('data', (d) => {
      pending += d.toString('latin1')
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.slice(0, end)
        pending = pending.slice(end + 4)
        const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1]
        if (key) {
          // A WebSocket handshake: 101 with the same disclosing fields, then a silent tunnel.
          const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
          socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nServer: secret-backend/1.0\r\nX-Powered-By: PHP/5.4\r\n\r\n`)
          socket.removeAllListeners('data')
          socket.on('data', () => {})
          return
        }
        socket.write('HTTP/1.1 200 OK\r\nServer: secret-backend/1.0\r\nX-Powered-By: PHP/5.4\r\nX-Keep: 1\r\nContent-Length: 2\r\n\r\nok')
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
  backendPort = (backend.address() as net.AddressInfo).port
  const probe = net.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  deadPort = (probe.address() as net.AddressInfo).port
  await new Promise((resolve) => probe.close(resolve))
  plain = new HttpDataplane({ hostname: '127.0.0.1' })
  secure = new HttpDataplane({ hostname: '127.0.0.1' })
  expect((await plain.apply(plan('HTTP', EDITS, 1))).problems).toEqual([])
  expect((await secure.apply(plan('HTTPS', EDITS, 1))).problems).toEqual([])
})

afterAll(async () => {
  await plain.stop(true)
  await secure.stop(true)
  backend.close()
})

/** The response head's field lines as sent (name case kept) and the status. */
interface Head {
  readonly status: number
  readonly lines: string[]
}
const field = (h: Head, name: string) => h.lines.filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))

function exchange(socket: net.Socket, path: string, extra = ''): Promise<Head> {
  return new Promise((resolve, reject) => {
    let raw = ''
    const timer = setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(raw)}`)), 5000)
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      raw += d
      const end = raw.indexOf('\r\n\r\n')
      if (end < 0) return
      clearTimeout(timer)
      const [statusLine, ...lines] = raw.slice(0, end).split('\r\n')
      socket.destroy()
      resolve({ status: Number(statusLine!.split(' ')[1]), lines })
    })
    socket.on('error', reject)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: late.test\r\n${extra}\r\n`)
  })
}

const h1 = (dp: HttpDataplane, path: string) => exchange(net.connect({ host: '127.0.0.1', port: dp.boundPort(0)! }), path)
const h1s = (path: string) => exchange(tls.connect({ host: '127.0.0.1', port: secure.boundPort(0)!, servername: 'late.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }), path)

async function h2(path: string): Promise<http2.IncomingHttpHeaders> {
  const session = http2.connect(`https://127.0.0.1:${secure.boundPort(0)!}`, { rejectUnauthorized: false, servername: 'late.test' })
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({ ':path': path, ':authority': 'late.test' })
      stream.on('response', (headers) => {
        stream.resume()
        resolve(headers)
      })
      stream.on('error', reject)
      session.on('error', reject)
    })
  } finally {
    session.close()
  }
}

function expectEdited(h: Head): void {
  expect(field(h, 'server').map((l) => l.toLowerCase())).toEqual(['server: portico'])
  expect(field(h, 'x-powered-by')).toEqual([])
  expect(field(h, 'x-frame-options').map((l) => l.toLowerCase())).toEqual(['x-frame-options: deny'])
}

describe('lateResponseHeaders on every path', () => {
  test('the rules take the paths the tests mean: / direct, /piped the pipeline', () => {
    const rules = plain.active.current!.ports.get(0)!.router.listeners[0]!.catchAll!.rules.rules
    expect(rules.map((r) => [r.ir.match.path?.value, r.direct, r.directWebSocket])).toEqual([['/piped', false, false], ['/none', false, false], ['/down', true, true], ['/', true, true]])
  })

  test('plain HTTP/1.1, direct path: the backend head edited, other fields untouched in their case', async () => {
    const h = await h1(plain, '/')
    expect(h.status).toBe(200)
    expectEdited(h)
    // Name case kept: the backend's own line, relayed.
    expect(field(h, 'x-keep')).toEqual(['X-Keep: 1'])
  })

  test('plain HTTP/1.1, pipeline path (a rule with a response filter)', async () => {
    const h = await h1(plain, '/piped')
    expect(h.status).toBe(200)
    expectEdited(h)
    expect(field(h, 'x-keep').map((l) => l.toLowerCase())).toEqual(['x-keep: 1'])
    expect(field(h, 'x-piped')).toEqual(['x-piped: 1'])
  })

  test("the gateway's own answers: the front's 502, a direct response and a 404", async () => {
    const failed = await h1(plain, '/down')
    expect(failed.status).toBe(502)
    expectEdited(failed)
    expectEdited(await h1(plain, '/none'))
    const missing = await exchange(net.connect({ host: '127.0.0.1', port: plain.boundPort(0)! }), 'http://elsewhere.test/')
    expectEdited(missing)
  })

  test('the WebSocket 101, on both paths: edited, the upgrade fields kept', async () => {
    const upgrade = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'
    for (const path of ['/ws', '/piped/ws']) {
      const h = await exchange(net.connect({ host: '127.0.0.1', port: plain.boundPort(0)! }), path, upgrade)
      expect(h.status).toBe(101)
      expectEdited(h)
      expect(field(h, 'sec-websocket-accept').map((l) => l.toLowerCase())).toEqual(['sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo='])
      expect(field(h, 'upgrade').map((l) => l.toLowerCase())).toEqual(['upgrade: websocket'])
    }
  })

  test('HTTPS: HTTP/1.1 on both paths and h2', async () => {
    const direct = await h1s('/')
    expect(direct.status).toBe(200)
    expectEdited(direct)
    expect(field(direct, 'x-keep')).toEqual(['X-Keep: 1'])
    expectEdited(await h1s('/piped'))
    const viaH2 = await h2('/')
    expect(Number(viaH2[':status'])).toBe(200)
    expect(viaH2.server).toBe('portico')
    expect(viaH2['x-powered-by']).toBeUndefined()
    expect(viaH2['x-frame-options']).toBe('DENY')
    expect(viaH2['x-keep']).toBe('1')
  })

  test('without the policy the backend fields pass unchanged (the default), and the policy can come back', async () => {
    const dp = new HttpDataplane({ hostname: '127.0.0.1' })
    try {
      expect((await dp.apply(plan('HTTP', undefined, 1))).problems).toEqual([])
      for (const path of ['/', '/piped']) {
        const h = await h1(dp, path)
        expect(field(h, 'server').map((l) => l.toLowerCase())).toEqual(['server: secret-backend/1.0'])
        expect(field(h, 'x-powered-by')).toHaveLength(1)
        expect(field(h, 'x-frame-options')).toEqual([])
      }
      expect((await dp.apply(plan('HTTP', EDITS, 2))).problems).toEqual([])
      expectEdited(await h1(dp, '/'))
      expectEdited(await h1(dp, '/piped'))
    } finally {
      await dp.stop(true)
    }
  })
})

describe('lateResponseHeaders translation', () => {
  const translate = (late: unknown) => {
    const spec = { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], headers: { lateResponseHeaders: late } }
    const problems = validate(clientTrafficPolicy.schema, spec, 'spec')
    if (problems.errors.length || problems.unsupported.length) return [...problems.errors, ...problems.unsupported]
    return clientTrafficPolicy.features(spec, undefined as never)
  }

  test("Envoy Gateway's HTTPHeaderFilter fields become the port's edits", () => {
    expect(translate({ set: [{ name: 'Server', value: 'portico' }], remove: ['X-Powered-By'] })).toEqual([
      { scope: 'connection', name: 'lateResponseHeaders', http: { lateResponseHeaders: { set: [['Server', 'portico']], add: [], remove: ['x-powered-by'] } } },
    ])
  })

  test('framing and hop-by-hop fields, bad names and values are refused', () => {
    expect(translate({ remove: ['Content-Length'] })).toContain('cannot edit content-length')
    expect(translate({ set: [{ name: 'Connection', value: 'close' }] })).toContain('cannot edit connection')
    expect(String(translate({ set: [{ name: 'Bad Name', value: 'x' }] }))).toContain('name')
    expect(String(translate({ add: [{ name: 'X-A', value: 'a\r\nInjected: 1' }] }))).toContain('value')
  })

  test('editResponseHead keeps the status line and untouched lines, removes before setting and adding', () => {
    const head = 'HTTP/1.1 200 OK\r\nServer: a\r\nX-Powered-By: b\r\nserver: c\r\nX-Keep: 1\r\n\r\n'
    expect(editResponseHead(head, EDITS)).toBe('HTTP/1.1 200 OK\r\nX-Keep: 1\r\nServer: portico\r\nX-Frame-Options: DENY\r\n\r\n')
    expect(editResponseHead('HTTP/1.1 204 No Content\r\n\r\n', { set: [], add: [], remove: ['server'] })).toBe('HTTP/1.1 204 No Content\r\n\r\n')
  })
})
