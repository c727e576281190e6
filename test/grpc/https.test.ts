/**
 * gRPC over an HTTPS listener: the front terminates TLS, ALPN h2 connections reach the h2
 * server through the connection's tunnel, with the client's address and SNI. A real
 * @grpc/grpc-js client over TLS: calls with trailers, a stream, gateway statuses, and a Host
 * that names another listener than the SNI.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eventually } from '../e2e/support.ts'
import { makeCertificate, type Certificate } from '../l4/support/servers.ts'
import { echoClient, grpc, rawCodec, TEST_SERVICE, unary } from './echo.ts'
import { GrpcHarness, NS } from './harness.ts'

const h = new GrpcHarness()
let cert: Certificate
const indent = (s: string) => s.trim().split('\n').map((l) => `    ${l}`).join('\n')

beforeAll(async () => {
  cert = makeCertificate(['grpc.example.com', 'other.example.com'])
  await h.start(2, (port) => `
    - { name: grpc, port: ${port}, protocol: HTTPS, hostname: grpc.example.com, tls: { certificateRefs: [{ name: grpc-cert }] } }
    - { name: other, port: ${port}, protocol: HTTPS, hostname: other.example.com, tls: { certificateRefs: [{ name: grpc-cert }] } }`)
  h.cfg.write(
    'case.yaml',
    `apiVersion: v1
kind: Secret
metadata: { name: grpc-cert, namespace: ${NS} }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(cert.certPem)}
  tls.key: |
${indent(cert.keyPem)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: secure, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace, sectionName: grpc }]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: other, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace, sectionName: other }]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v2, port: 8080 }] }]
`,
  )
  await h.run()
})

afterAll(async () => {
  await h.stop()
})

function tlsClient(serverName: string, authority = serverName): grpc.Client {
  return echoClient(h.port, authority, grpc.credentials.createSsl(Buffer.from(cert.certPem)), { 'grpc.ssl_target_name_override': serverName })
}

test('a unary call over TLS (ALPN h2) gets its answer and trailers', async () => {
  const c = tlsClient('grpc.example.com')
  try {
    const r = await eventually(async () => {
      const r = await unary(c, 'Echo', {}, 'hi', 2000)
      return r.code === 0 ? r : undefined
    }, 10_000, 'https grpc live')
    expect(r.answer?.backend).toBe('grpc-infra-backend-v1')
    expect(r.answer?.headers['x-forwarded-proto']).toBe('https')
    expect(r.answer?.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(r.trailers['x-echo-trailer']).toBe('grpc-infra-backend-v1')
  } finally {
    c.close()
  }
})

test('a server stream of 1,000 messages over TLS', async () => {
  const c = tlsClient('grpc.example.com')
  try {
    const call = c.makeServerStreamRequest(`/${TEST_SERVICE}/Download`, rawCodec.serialize, rawCodec.deserialize, Buffer.from(JSON.stringify({ count: 1000, size: 512 })))
    let count = 0
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('data', () => count++)
      call.on('status', resolve)
      call.on('error', () => {})
    })
    expect(status.code).toBe(0)
    expect(count).toBe(1000)
  } finally {
    c.close()
  }
})

test('the SNI picks the listener: another listener\'s route answers on its own name', async () => {
  const c = tlsClient('other.example.com')
  try {
    const r = await unary(c, 'Echo')
    expect(r.code).toBe(0)
    expect(r.answer?.backend).toBe('grpc-infra-backend-v2')
  } finally {
    c.close()
  }
})

test('an authority that names another listener than the SNI is refused with a gRPC status, not routed', async () => {
  const c = tlsClient('grpc.example.com', 'other.example.com')
  try {
    const r = await unary(c, 'Echo')
    expect(r.code).toBe(grpc.status.UNAVAILABLE)
    expect(r.details).toContain('misdirected')
  } finally {
    c.close()
  }
})
