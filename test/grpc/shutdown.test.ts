/**
 * Stopping the gateway with gRPC calls in flight on an h2c connection: the client gets GOAWAY
 * (no new streams), the running call still finishes with its status.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { grpc, TEST_SERVICE, unary } from './echo.ts'
import { GrpcHarness } from './harness.ts'

const h = new GrpcHarness()
let client: grpc.Client

beforeAll(async () => {
  client = await h.startCatchAll('all')
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
