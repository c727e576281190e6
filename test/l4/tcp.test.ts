import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { backend, invalidBackend, pool, recordingLogger, route, snapshot, tcpPort } from './support/snapshot.ts'
import { freePort, greeting, startTcpEcho, TcpClient, type Backend } from './support/servers.ts'

let alpha: Backend
let beta: Backend
let dataplane: L4Dataplane

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
})

async function gatewayWith(routes: ReturnType<typeof route>[], pools = [pool('test/alpha:3000', [alpha.port]), pool('test/beta:3000', [beta.port])]) {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1', connectTimeoutMs: 2_000 })
  const port = await freePort()
  const { problems } = await dataplane.apply(snapshot([tcpPort(port, routes)], pools))
  expect(problems).toEqual([])
  return port
}

describe('TCPRoute', () => {
  test('echo round trip through the gateway', async () => {
    const port = await gatewayWith([route('echo', [backend('test/alpha:3000')])])
    const client = TcpClient.connect(port)
    await client.waitFor('hello from alpha\n')
    client.write('ping 1\n')
    await client.waitFor('ping 1\n')
    client.write('x'.repeat(100_000))
    await client.waitFor('x'.repeat(100_000))
    client.destroy()
  })

  test('weights split connections 3:1 and zero weight is never chosen', async () => {
    const zero = await startTcpEcho('zero')
    const port = await gatewayWith(
      [route('split', [backend('test/alpha:3000', 3), backend('test/beta:3000', 1), backend('test/zero:3000', 0)])],
      [pool('test/alpha:3000', [alpha.port]), pool('test/beta:3000', [beta.port]), pool('test/zero:3000', [zero.port])],
    )
    const counts: Record<string, number> = {}
    for (let i = 0; i < 40; i++) {
      const line = await greeting(port)
      counts[line ?? 'closed'] = (counts[line ?? 'closed'] ?? 0) + 1
    }
    await zero.stop()
    // Smooth weighted round-robin is exact over every window of 4.
    expect(counts).toEqual({ 'hello from alpha': 30, 'hello from beta': 10 })
    expect(zero.hits).toBe(0)
  })

  test('an invalid backendRef rejects its share of connections', async () => {
    const port = await gatewayWith([route('half-invalid', [backend('test/alpha:3000', 1), invalidBackend('BackendNotFound', 1)])])
    const lines = []
    for (let i = 0; i < 10; i++) lines.push(await greeting(port))
    expect(lines.filter((line) => line === 'hello from alpha')).toHaveLength(5)
    expect(lines.filter((line) => line === undefined)).toHaveLength(5)
  })

  test('only the first (oldest) route on a port receives traffic', async () => {
    const port = await gatewayWith([route('older', [backend('test/alpha:3000')]), route('newer', [backend('test/beta:3000')])])
    for (let i = 0; i < 5; i++) expect(await greeting(port)).toBe('hello from alpha')
  })

  test('a refused backend closes the client', async () => {
    const dead = await freePort()
    const port = await gatewayWith([route('dead', [backend('test/dead:1')])], [pool('test/dead:1', [dead])])
    const client = TcpClient.connect(port)
    expect(await client.closesWithin(3_000)).toBe(true)
    expect(client.received).toBe('')
  })

  test('a refused endpoint is retried once on another endpoint of the pool', async () => {
    const dead = await freePort()
    const port = await gatewayWith([route('retry', [backend('test/mixed:1')])], [pool('test/mixed:1', [dead, alpha.port])])
    for (let i = 0; i < 4; i++) expect(await greeting(port)).toBe('hello from alpha')
  })

  test('a pool without endpoints closes the client', async () => {
    const port = await gatewayWith([route('empty', [backend('test/empty:1')])], [pool('test/empty:1', [])])
    const client = TcpClient.connect(port)
    expect(await client.closesWithin(3_000)).toBe(true)
  })

  test('half-close: the client FIN reaches the backend and the reply still arrives', async () => {
    const port = await gatewayWith([route('half', [backend('test/alpha:3000')])])
    const client = TcpClient.connect(port)
    await client.waitFor('hello from alpha\n')
    client.write('last words\n')
    client.socket.end() // FIN; we keep reading
    await client.closed
    expect(client.received).toBe('hello from alpha\nlast words\n')
  })

  test('bytes sent before the backend connects are not lost', async () => {
    const port = await gatewayWith([route('early', [backend('test/alpha:3000')])])
    const client = TcpClient.connect(port)
    client.write('early bird\n')
    await client.waitFor('early bird\n')
    expect(client.received).toBe('hello from alpha\nearly bird\n')
    client.destroy()
  })
})
