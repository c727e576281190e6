/**
 * GRPCRoute over the existing HTTP data plane, with gRPC framing spoken by node:http2 on both
 * sides (no gRPC library in the project): an h2c client (prior knowledge) on an HTTP listener,
 * h2c backends (appProtocol kubernetes.io/h2c). What this proves: method matches route calls to
 * the right backend, header filters apply, message bytes stream through, and a gRPC error the
 * backend sends as Trailers-Only (grpc-status in the response head) reaches the client.
 * Calls are served by the h2 server (src/dataplane/http2); test/grpc has the @grpc/grpc-js tests.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import http2, { type Http2Server, type ServerHttp2Stream } from 'node:http2'
import type { Portico } from '../../src/app.ts'
import { closeH2cSessions } from '../../src/dataplane/upstream/h2c.ts'
import { ConfigDir, eventually, freePort, startGateway } from './support.ts'

const servers: Http2Server[] = []
let cfg: ConfigDir
let gw: Portico
let port: number

/** A backend that answers every call with its name, the path, x-route and the request body echoed. */
async function grpcBackend(name: string): Promise<number> {
  const server = http2.createServer()
  server.on('stream', (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => {
      if (String(headers[':path']).endsWith('/Missing')) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' }, { endStream: true })
        return
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-backend': name, 'x-path': String(headers[':path']), 'x-route': String(headers['x-route'] ?? '') })
      stream.end(Buffer.concat(chunks))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  servers.push(server)
  return (server.address() as { port: number }).port
}

const frame = (payload: string) => {
  const body = Buffer.from(payload)
  const out = Buffer.alloc(5 + body.length)
  out.writeUInt32BE(body.length, 1)
  body.copy(out, 5)
  return out
}

async function call(path: string, payload = 'hello'): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer }> {
  const session = http2.connect(`http://127.0.0.1:${port}`)
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': path, ':authority': 'grpc.example.com', 'content-type': 'application/grpc', te: 'trailers' })
      const chunks: Buffer[] = []
      let headers: http2.IncomingHttpHeaders = {}
      req.on('response', (h) => (headers = h))
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => resolve({ headers, body: Buffer.concat(chunks) }))
      req.on('error', reject)
      req.end(frame(payload))
    })
  } finally {
    session.close()
  }
}

beforeAll(async () => {
  const v1 = await grpcBackend('v1')
  const v2 = await grpcBackend('v2')
  port = await freePort()
  cfg = new ConfigDir()
  const service = (name: string, target: number) => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ports: [{ name: grpc, port: 50051, targetPort: ${target}, appProtocol: kubernetes.io/h2c }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: grpc, port: ${target} }]
endpoints: [{ addresses: [127.0.0.1] }]`
  cfg.write(
    'manifests.yaml',
    `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: portico
  listeners: [{ name: grpc, port: ${port}, protocol: HTTP }]
---${service('echo-v1', v1)}
---${service('echo-v2', v2)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: echo, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [grpc.example.com]
  rules:
    - matches: [{ method: { service: grpc.testing.EchoService, method: Echo } }]
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-route, value: exact } ] } }]
      backendRefs: [{ name: echo-v1, port: 50051 }]
    - matches: [{ method: { service: grpc.testing.EchoService } }]
      backendRefs: [{ name: echo-v2, port: 50051 }]
`,
  )
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await call('/grpc.testing.EchoService/Echo')).headers['x-backend'] === 'v1', 5000, 'GRPCRoute live')
})

afterAll(async () => {
  closeH2cSessions()
  await gw?.stop()
  for (const s of servers) s.close()
  cfg?.cleanup()
})

test('an exact method match routes to its backend with its filter, the message bytes intact', async () => {
  const r = await call('/grpc.testing.EchoService/Echo', 'ping')
  expect(Number(r.headers[':status'])).toBe(200)
  expect(r.headers['x-backend']).toBe('v1')
  expect(r.headers['x-route']).toBe('exact')
  expect(r.body.equals(frame('ping'))).toBe(true)
})

test('a service match takes the other methods of the service', async () => {
  const r = await call('/grpc.testing.EchoService/ServerStream')
  expect(r.headers['x-backend']).toBe('v2')
  expect(r.headers['x-path']).toBe('/grpc.testing.EchoService/ServerStream')
})

test('a Trailers-Only gRPC error from the backend reaches the client', async () => {
  const r = await call('/grpc.testing.EchoService/Missing')
  expect(r.headers['grpc-status']).toBe('5')
  expect(r.headers['grpc-message']).toBe('not found')
})

test('a method no rule matches is answered UNIMPLEMENTED (HTTP 200, Trailers-Only)', async () => {
  const r = await call('/other.Service/Call')
  expect(r.headers['x-backend']).toBeUndefined()
  expect(Number(r.headers[':status'])).toBe(200)
  expect(r.headers['grpc-status']).toBe('12')
})
