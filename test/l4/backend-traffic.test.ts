/** Backend traffic on TCP routes: refused connects tried on each other endpoint once, load balancing and the maxConnections circuit. */
import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, pool, recordingLogger, route, snapshot, tcpPort } from './support/snapshot.ts'
import { freePort, greeting, startTcpEcho, TcpClient, type Backend } from './support/servers.ts'
import type { BackendPool } from '../../src/ir/types.ts'

let alpha: Backend
let beta: Backend
let dataplane: L4Dataplane | undefined

beforeAll(async () => {
  alpha = await startTcpEcho('alpha')
  beta = await startTcpEcho('beta')
})
afterAll(async () => {
  await alpha.stop()
  await beta.stop()
})
afterEach(async () => {
  await dataplane?.stop()
  dataplane = undefined
})

async function gatewayWith(p: BackendPool): Promise<number> {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1', connectTimeoutMs: 2_000 })
  const port = await freePort()
  const { problems } = await dataplane.apply(snapshot([tcpPort(port, [route('r', [backend(p.key)])])], [p]))
  expect(problems).toEqual([])
  return port
}

test('three refusing endpoints and one live one: every connection reaches the live one', async () => {
  const dead = [await freePort(), await freePort(), await freePort()]
  const port = await gatewayWith(pool('test/mixed:1', [...dead, alpha.port]))
  for (let i = 0; i < 8; i++) expect(await greeting(port)).toBe('hello from alpha')
})

test('ConsistentHash on the source address keeps one client address on one endpoint', async () => {
  const port = await gatewayWith({ ...pool('test/hash:1', [alpha.port, beta.port]), policy: { type: 'ConsistentHash', source: 'ClientIP' } })
  const seen = new Set<string | undefined>()
  for (let i = 0; i < 10; i++) seen.add(await greeting(port))
  expect(seen.size).toBe(1)
})

test('circuit maxConnections: a connection over the limit is closed at once; freed slots admit again', async () => {
  const port = await gatewayWith({ ...pool('test/cb:1', [alpha.port]), circuitBreaker: { maxConnections: 1, maxPendingRequests: 0, maxParallelRequests: 100, maxParallelRetries: 1 } })
  const first = TcpClient.connect(port)
  await first.waitFor('hello from alpha\n')
  const second = TcpClient.connect(port)
  expect(await second.closesWithin(2_000)).toBe(true)
  expect(second.received).toBe('')
  first.destroy()
  await Bun.sleep(100)
  expect(await greeting(port)).toBe('hello from alpha')
})
