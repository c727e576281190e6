/**
 * Stopping the gateway with gRPC calls in flight on an h2c connection: the client gets GOAWAY
 * (no new streams), the running call still finishes with its status.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eventually } from '../e2e/support.ts'
import { echoClient, grpc, TEST_SERVICE, unary } from './echo.ts'
import { GrpcHarness, NS } from './harness.ts'

const h = new GrpcHarness()
let client: grpc.Client

beforeAll(async () => {
  await h.start(1)
  h.cfg.write(
    'route.yaml',
    `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: all, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }] }]
`,
  )
  await h.run()
  client = echoClient(h.port)
  await eventually(async () => (await unary(client, 'Echo')).code === 0 || undefined, 10_000, 'route live')
})

afterAll(async () => {
  client?.close()
  h.gw = undefined
  await h.stop()
})

test('a call in flight when the gateway stops completes (GOAWAY, then drain)', async () => {
  const slow = unary(client, 'Slow', {}, '600', 10_000, TEST_SERVICE)
  await Bun.sleep(150)
  const stopped = h.gw!.stop()
  const r = await slow
  expect(r.code).toBe(0)
  await stopped
  // New calls find nothing listening.
  const after = await unary(client, 'Echo', {}, 'hi', 1000)
  expect(after.code).not.toBe(0)
})
