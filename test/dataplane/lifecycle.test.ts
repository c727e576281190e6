import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { closedPort, startDataplane } from './harness.ts'
import { listener, pool, port, rule, simple, snapshot, vhost } from './ir.ts'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import type { HttpListener } from '../../src/ir/types.ts'

let v1: EchoUpstream
let v2: EchoUpstream

beforeAll(() => {
  v1 = startEcho('v1')
  v2 = startEcho('v2')
})

afterAll(async () => {
  await v1.stop()
  await v2.stop()
})

const nameOf = async (url: string, init?: RequestInit) => ((await (await fetch(url, init)).json()) as { name: string }).name

describe('snapshot swap', () => {
  test('routes change without touching sockets; an in-flight request finishes on the old plan', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [v1.port]), pool('p2', [v2.port])], 1))
    try {
      expect(await nameOf(`${gw.base}/x`)).toBe('v1')
      const arrived = v1.nextRequest()
      const slow = fetch(`${gw.base}/slow?delay=600`)
      await arrived
      const result = await gw.dp.apply(simple(0, [rule({ action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'p2' }, filters: [] }] } })], [pool('p1', [v1.port]), pool('p2', [v2.port])], 2))
      expect(result.opened).toEqual([])
      expect(result.closed).toEqual([])
      expect(gw.dp.boundPort(0)).toBe(gw.port)
      expect(await nameOf(`${gw.base}/x`)).toBe('v2')
      const slowRes = await slow
      expect(slowRes.status).toBe(200)
      expect(((await slowRes.json()) as { name: string }).name).toBe('v1')
      expect(gw.dp.active.current?.revision).toBe(2)
    } finally {
      await gw.stop()
    }
  })

  test('a request whose route disappears mid-flight still completes', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [v1.port])], 1))
    try {
      const arrived = v1.nextRequest()
      const slow = fetch(`${gw.base}/slow?delay=400`)
      await arrived
      await gw.dp.apply(simple(0, [], [], 2))
      expect((await fetch(`${gw.base}/x`)).status).toBe(404)
      expect((await slow).status).toBe(200)
    } finally {
      await gw.stop()
    }
  })
})

describe('bad snapshots', () => {
  test('a snapshot that does not compile is reported and the previous plan stays live', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [v1.port])], 1))
    try {
      const result = await gw.dp.apply(simple(0, [rule({ match: { path: { type: 'RegularExpression', value: '/(' } } })], [pool('p1', [v1.port])], 2))
      expect(result.problems.length).toBe(1)
      expect(gw.dp.active.current?.revision).toBe(1)
      expect(await nameOf(`${gw.base}/x`)).toBe('v1')
    } finally {
      await gw.stop()
    }
  })
})

describe('ports', () => {
  test('apply opens and closes servers as ports come and go', async () => {
    const [p1, p2] = [await closedPort(), await closedPort()]
    const dp = new HttpDataplane({ hostname: '127.0.0.1' })
    const listeners = [listener([vhost('*', [rule()])])]
    const pools = [pool('p1', [v1.port])]
    try {
      let result = await dp.apply(snapshot([port(p1, listeners)], pools, 1))
      expect(result.opened).toEqual([p1])
      result = await dp.apply(snapshot([port(p1, listeners), port(p2, listeners)], pools, 2))
      expect(result.opened).toEqual([p2])
      expect(await nameOf(`http://127.0.0.1:${p2}/`)).toBe('v1')
      result = await dp.apply(snapshot([port(p2, listeners)], pools, 3))
      expect(result.closed).toEqual([p1])
      expect(result.problems).toEqual([])
      await expect(fetch(`http://127.0.0.1:${p1}/`)).rejects.toThrow()
      expect(await nameOf(`http://127.0.0.1:${p2}/`)).toBe('v1')
    } finally {
      await dp.stop(true)
    }
  })

  test('a port that cannot bind is reported, not thrown; other ports still serve', async () => {
    const blocker = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const free = await closedPort()
    const dp = new HttpDataplane({ hostname: '127.0.0.1' })
    const listeners = [listener([vhost('*', [rule()])])]
    try {
      const result = await dp.apply(snapshot([port(blocker.port, listeners), port(free, listeners)], [pool('p1', [v1.port])]))
      expect(result.problems.length).toBe(1)
      expect(result.problems[0]).toContain(String(blocker.port))
      expect(result.ports.find((p) => p.port === blocker.port)?.error).toBeTruthy()
      expect(await nameOf(`http://127.0.0.1:${free}/`)).toBe('v1')
    } finally {
      blocker.stop(true)
      await dp.stop(true)
    }
  })
})

describe('HTTPS', () => {
  const pem = (name: string) => readFileSync(join(import.meta.dir, 'fixtures', name), 'utf8')
  const tlsListener = (host: string, name: string): HttpListener => ({
    ...listener([vhost(host, [rule()])], host),
    tls: { certificates: [{ certPem: pem(`${name}.cert.pem`), keyPem: pem(`${name}.key.pem`) }] },
  })

  test('terminates TLS and picks the certificate by SNI', async () => {
    const dp = new HttpDataplane({ hostname: '127.0.0.1' })
    try {
      const result = await dp.apply(snapshot([port(0, [tlsListener('a.test', 'a.test'), tlsListener('b.test', 'b.test')], 'HTTPS')], [pool('p1', [v1.port])]))
      expect(result.problems).toEqual([])
      const bound = dp.boundPort(0)!
      for (const host of ['a.test', 'b.test']) {
        const res = await fetch(`https://127.0.0.1:${bound}/`, {
          headers: { host },
          tls: { serverName: host, ca: pem(`${host}.cert.pem`) },
        } as RequestInit)
        const body = (await res.json()) as { name: string; headers: Record<string, string> }
        expect(body.name).toBe('v1')
        expect(body.headers['x-forwarded-proto']).toBe('https')
      }
    } finally {
      await dp.stop(true)
    }
  })
})

describe('backend TLS', () => {
  const pem = (name: string) => readFileSync(join(import.meta.dir, 'fixtures', name), 'utf8')

  test('re-encrypts to the backend, verifying the policy hostname against the given CA', async () => {
    const backend = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      tls: { cert: pem('a.test.cert.pem'), key: pem('a.test.key.pem') },
      fetch: (req) => new Response(`tls backend saw ${new URL(req.url).pathname}`),
    })
    const tlsPool = (hostname: string) => ({ ...pool('p1', [backend.port!]), tls: { hostname, caPem: pem('a.test.cert.pem'), subjectAltNames: [] } })
    const gw = await startDataplane(simple(0, [rule()], [tlsPool('a.test')]))
    try {
      const res = await fetch(`${gw.base}/secure`)
      expect(await res.text()).toBe('tls backend saw /secure')
      // Wrong expected name: verification must fail rather than silently succeed.
      await gw.dp.apply(simple(0, [rule()], [tlsPool('b.test')], 2))
      expect((await fetch(`${gw.base}/secure`)).status).toBeGreaterThanOrEqual(502)
    } finally {
      await gw.stop()
      backend.stop(true)
    }
  })
})

describe('HTTPS client certificate validation', () => {
  const pem = (name: string) => readFileSync(join(import.meta.dir, 'fixtures', name), 'utf8')

  test('AllowValidOnly: a client certificate from the trusted CA passes, another is rejected', async () => {
    const dp = new HttpDataplane({ hostname: '127.0.0.1' })
    // The self-signed a.test certificate doubles as the client CA (it is its own issuer).
    const mtls: HttpListener = {
      ...listener([vhost('*', [rule()])]),
      tls: {
        certificates: [{ certPem: pem('a.test.cert.pem'), keyPem: pem('a.test.key.pem') }],
        clientValidation: { caPem: pem('a.test.cert.pem'), mode: 'AllowValidOnly' },
      },
    }
    try {
      await dp.apply(snapshot([port(0, [mtls], 'HTTPS')], [pool('p1', [v1.port])]))
      const url = `https://127.0.0.1:${dp.boundPort(0)}/`
      const as = (client: string) =>
        fetch(url, { tls: { serverName: 'a.test', ca: pem('a.test.cert.pem'), cert: pem(`${client}.cert.pem`), key: pem(`${client}.key.pem`) } } as RequestInit)
      expect((await as('a.test')).status).toBe(200)
      await expect(as('b.test')).rejects.toThrow()
    } finally {
      await dp.stop(true)
    }
  })
})

describe('streaming', () => {
  test('a chunked upload reaches the backend before the client finishes sending', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [v1.port])]))
    try {
      const arrived = v1.nextRequest()
      let backendSawFirstChunkBeforeEnd = false
      const encoder = new TextEncoder()
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode('part1;'))
          const record = await arrived
          for (let i = 0; i < 250 && record.firstChunkAt === undefined; i++) await Bun.sleep(20)
          backendSawFirstChunkBeforeEnd = record.firstChunkAt !== undefined
          controller.enqueue(encoder.encode('part2'))
          controller.close()
        },
      })
      const res = await fetch(`${gw.base}/chunked-upload`, { method: 'POST', body, duplex: 'half' } as RequestInit)
      expect(((await res.json()) as { body: string }).body).toBe('part1;part2')
      expect(backendSawFirstChunkBeforeEnd).toBe(true)
    } finally {
      await gw.stop()
    }
  })

  test('SSE: the first event arrives before the stream ends', async () => {
    const gw = await startDataplane(simple(0, [rule()], [pool('p1', [v1.port])]))
    try {
      const res = await fetch(`${gw.base}/sse`)
      expect(res.headers.get('content-type')).toBe('text/event-stream')
      const reader = res.body!.getReader()
      // The backend holds the second event for 2 s; the first must not wait for it.
      const first = await Promise.race([reader.read(), Bun.sleep(1500).then(() => 'stalled' as const)])
      expect(first).not.toBe('stalled')
      expect(new TextDecoder().decode((first as { value?: Uint8Array }).value)).toContain('data: first')
      await reader.cancel()
    } finally {
      await gw.stop()
    }
  })
})
