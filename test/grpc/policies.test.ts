/**
 * What a gRPC client sees of the gateway's own answers and policies on a GRPCRoute: auth
 * (SecurityPolicy apiKeyAuth → UNAUTHENTICATED), rate limits (BackendTrafficPolicy → RESOURCE_EXHAUSTED),
 * a backend that is down (UNAVAILABLE), response header filters, trailers relayed, metrics per
 * gRPC method; and h2c requests of an ordinary HTTPRoute on the same port keep working.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import http2 from 'node:http2'
import { eventually, freePort } from '../e2e/support.ts'
import { echoClient, grpc, SERVICE, unary } from './echo.ts'
import { GrpcHarness, NS, service } from './harness.ts'
import { configureTelemetry, flushTelemetry } from '../../src/telemetry/observe.ts'

const h = new GrpcHarness()
let client: grpc.Client
let httpBackend: ReturnType<typeof Bun.serve>

beforeAll(async () => {
  await h.start(2)
  const deadPort = await freePort()
  httpBackend = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: async (req) => new Response(`http ${req.method} ${new URL(req.url).pathname} ${(await req.text()).length}`, { headers: { 'x-plain': 'yes' } }) })
  h.cfg.write(
    'case.yaml',
    `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: guarded, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  hostnames: [guarded.test]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: limited, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  hostnames: [limited.test]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: open, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  hostnames: [open.test]
  rules:
    - matches: [{ method: { service: ${SERVICE}, method: EchoTwo } }]
      backendRefs: [{ name: grpc-dead, port: 8080 }]
    - matches: [{ method: { service: ${SERVICE} } }]
      filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-gateway, value: portico }] } }]
      backendRefs: [{ name: grpc-infra-backend-v2, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: mirrored, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  hostnames: [mirrored.test]
  rules:
    - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: grpc-infra-backend-v2, port: 8080 } } }]
      backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: plain, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  hostnames: [plain.test]
  rules: [{ backendRefs: [{ name: plain-http, port: 8080 }] }]
---
${service('grpc-dead', deadPort)}---
${service('plain-http', httpBackend.port!, { appProtocol: '' })}---
apiVersion: v1
kind: Secret
metadata: { name: grpc-clients, namespace: ${NS} }
stringData: { mobile: key-123 }
---
apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: grpc-keys, namespace: ${NS} }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: GRPCRoute, name: guarded }]
  apiKeyAuth: { credentialRefs: [{ name: grpc-clients }], extractFrom: [{ headers: [x-api-key] }] }
---
apiVersion: gateway.portico.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: grpc-limit, namespace: ${NS} }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: GRPCRoute, name: limited }]
  rateLimit: { local: { rules: [{ limit: { requests: 3, unit: Minute } }] } }
`,
  )
  await h.run()
  client = echoClient(h.port, 'open.test')
  await eventually(async () => (await unary(client, 'Echo')).code === 0 || undefined, 10_000, 'routes live')
})

afterAll(async () => {
  client?.close()
  httpBackend?.stop(true)
  await h.stop()
})

test('SecurityPolicy on a GRPCRoute: no key → UNAUTHENTICATED, a valid key → OK', async () => {
  const c = echoClient(h.port, 'guarded.test')
  try {
    const denied = await eventually(async () => {
      const r = await unary(c, 'Echo')
      return r.code === grpc.status.UNAUTHENTICATED ? r : undefined
    }, 5000, 'policy live')
    expect(denied.trailers['www-authenticate']).toContain('API-Key')
    expect((await unary(c, 'Echo', { 'x-api-key': 'wrong' })).code).toBe(grpc.status.UNAUTHENTICATED)
    const ok = await unary(c, 'Echo', { 'x-api-key': 'key-123' })
    expect(ok.code).toBe(0)
    expect(ok.answer?.backend).toBe('grpc-infra-backend-v1')
  } finally {
    c.close()
  }
})

test('the policy is Accepted for its GRPCRoute', async () => {
  const resources = (await (await fetch(`http://127.0.0.1:${h.gw!.adminPort}/resources`)).json()) as { kind: string; metadata: { name: string }; status?: { ancestors?: { conditions: { type: string; status: string }[] }[] } }[]
  for (const [kind, name] of [['SecurityPolicy', 'grpc-keys'], ['BackendTrafficPolicy', 'grpc-limit']]) {
    const p = resources.find((x) => x.kind === kind && x.metadata.name === name)
    expect(p?.status?.ancestors?.[0]?.conditions.find((c) => c.type === 'Accepted')?.status).toBe('True')
  }
})

test('rate limit on a GRPCRoute: over the limit → RESOURCE_EXHAUSTED', async () => {
  const c = echoClient(h.port, 'limited.test')
  try {
    const codes: number[] = []
    for (let i = 0; i < 5; i++) codes.push((await unary(c, 'Echo')).code)
    expect(codes).toEqual([0, 0, 0, grpc.status.RESOURCE_EXHAUSTED, grpc.status.RESOURCE_EXHAUSTED])
  } finally {
    c.close()
  }
})

test('a backend that refuses connections → UNAVAILABLE (a gRPC status, HTTP 200)', async () => {
  const r = await unary(client, 'EchoTwo')
  expect(r.code).toBe(grpc.status.UNAVAILABLE)
})

test('response header filters apply to the head; the backend trailers reach the client', async () => {
  const r = await unary(client, 'Echo')
  expect(r.code).toBe(0)
  expect(r.headers['x-gateway']).toBe('portico')
  expect(r.trailers['x-echo-trailer']).toBe('grpc-infra-backend-v2')
})

test('a gRPC error status of the backend reaches the client with its message', async () => {
  const r = await unary(client, 'Echo', {}, 'fail')
  expect(r.code).toBe(grpc.status.NOT_FOUND)
  expect(r.details).toBe('asked to fail')
})

test('RequestMirror on a GRPCRoute: the call is answered by its backend and copied to the mirror', async () => {
  const c = echoClient(h.port, 'mirrored.test')
  try {
    const mirror = h.backends[1]!.stats
    const before = mirror.unary
    const r = await unary(c, 'Echo')
    expect(r.code).toBe(0)
    expect(r.answer?.backend).toBe('grpc-infra-backend-v1')
    await eventually(() => mirror.unary > before || undefined, 5000, 'mirror saw the call')
  } finally {
    c.close()
  }
})

test('access log: a line per gRPC call with its grpc_status, and the local reply when the gateway answered', async () => {
  const lines: Record<string, unknown>[] = []
  configureTelemetry({ accessLog: true }, (chunk) => {
    for (const l of chunk.split('\n')) if (l) lines.push(JSON.parse(l))
  })
  try {
    expect((await unary(client, 'Echo')).code).toBe(0)
    expect((await unary(client, 'EchoTwo')).code).toBe(grpc.status.UNAVAILABLE)
    await eventually(async () => {
      await flushTelemetry()
      return lines.length >= 2 || undefined
    }, 5000, 'access log lines')
    const echo = lines.find((l) => String(l.path).endsWith('/Echo'))
    const two = lines.find((l) => String(l.path).endsWith('/EchoTwo'))
    expect(echo).toMatchObject({ protocol: 'HTTP/2', status: 200, grpc_status: 0, route: `${NS}/open`, local_reply: null, authority: 'open.test' })
    expect(two).toMatchObject({ grpc_status: 14, local_reply: 'upstream_error' })
  } finally {
    configureTelemetry(undefined)
  }
})

test('metrics per gRPC method: calls by service, method and grpc_code', async () => {
  const text = await eventually(async () => {
    const t = await (await fetch(`http://127.0.0.1:${h.gw!.adminPort}/metrics`)).text()
    return t.includes('portico_grpc_calls_total') ? t : undefined
  }, 5000, 'grpc metrics')
  expect(text).toMatch(new RegExp(`portico_grpc_calls_total\\{route="${NS}/open",rule="1",service="${SERVICE.replace(/\./g, '\\.')}",method="Echo",grpc_code="0"\\} \\d+`))
  expect(text).toContain('method="EchoTwo",grpc_code="14"')
  expect(text).toContain(`route="${NS}/limited"`)
  expect(text).toContain('grpc_code="8"')
})

/** gRPC-Web frames of a body: [flag, payload] in order. */
function frames(body: Uint8Array): [number, Buffer][] {
  const out: [number, Buffer][] = []
  const buf = Buffer.from(body)
  for (let at = 0; at + 5 <= buf.length; ) {
    const len = buf.readUInt32BE(at + 1)
    out.push([buf[at]!, buf.subarray(at + 5, at + 5 + len)])
    at += 5 + len
  }
  return out
}

async function grpcWeb(body: string): Promise<{ status: number; type: string | null; frames: [number, Buffer][] }> {
  const payload = Buffer.from(body)
  const frame = Buffer.alloc(5 + payload.length)
  frame.writeUInt32BE(payload.length, 1)
  payload.copy(frame, 5)
  // HTTP/1.1 from a browser-like client: through the front and the pipeline
  const res = await fetch(`http://127.0.0.1:${h.port}/${SERVICE}/Echo`, { method: 'POST', headers: { host: 'open.test', 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' }, body: frame })
  return { status: res.status, type: res.headers.get('content-type'), frames: frames(new Uint8Array(await res.arrayBuffer())) }
}

test('gRPC-Web over HTTP/1.1: the message, then the trailers in a 0x80 frame', async () => {
  const r = await grpcWeb('hi')
  expect(r.status).toBe(200)
  expect(r.type).toBe('application/grpc-web+proto')
  expect(r.frames.map(([flag]) => flag)).toEqual([0, 0x80])
  expect(JSON.parse(r.frames[0]![1].toString()).backend).toBe('grpc-infra-backend-v2')
  const trailers = r.frames[1]![1].toString()
  expect(trailers).toContain('grpc-status: 0\r\n')
  expect(trailers).toContain('x-echo-trailer: grpc-infra-backend-v2\r\n')
})

test('gRPC-Web: a backend error status arrives in the trailer frame', async () => {
  const r = await grpcWeb('fail')
  expect(r.status).toBe(200)
  const last = r.frames.at(-1)!
  expect(last[0]).toBe(0x80)
  expect(last[1].toString()).toContain('grpc-status: 5\r\n')
})

test('an h2c request of an ordinary HTTPRoute goes through the HTTP pipeline (body both ways)', async () => {
  const session = http2.connect(`http://127.0.0.1:${h.port}`)
  try {
    const res = await new Promise<{ status: number; plain: string | undefined; body: string }>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/upload', ':authority': 'plain.test', 'content-type': 'text/plain' })
      let status = 0
      let plain: string | undefined
      let body = ''
      req.on('response', (head) => {
        status = Number(head[':status'])
        plain = head['x-plain'] as string | undefined
      })
      req.setEncoding('utf8')
      req.on('data', (c: string) => (body += c))
      req.on('end', () => resolve({ status, plain, body }))
      req.on('error', reject)
      req.end('x'.repeat(100_000))
    })
    expect(res.status).toBe(200)
    expect(res.plain).toBe('yes')
    expect(res.body).toBe('http POST /upload 100000')
  } finally {
    session.close()
  }
})
