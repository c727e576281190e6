import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { createServer, type Socket } from 'node:net'
import { DEFAULT_TCP_IDLE_TIMEOUT_MS, L4Dataplane, type L4DataplaneOptions } from '../../src/dataplane/l4/server.ts'
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

async function gatewayWith(
  routes: ReturnType<typeof route>[],
  pools = [pool('test/alpha:3000', [alpha.port]), pool('test/beta:3000', [beta.port])],
  options: Partial<L4DataplaneOptions> = {},
) {
  dataplane = new L4Dataplane({ logger: recordingLogger(), hostname: '127.0.0.1', connectTimeoutMs: 2_000, ...options })
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

  test('half-close from the backend: its FIN reaches the client, which can still send', async () => {
    // Says its piece and half-closes at once, then keeps reading and reports what came after.
    let afterFin = ''
    let backendSocket: Socket | undefined
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      backendSocket = socket
      socket.setEncoding('utf8')
      socket.on('data', (text: string) => (afterFin += text))
      socket.on('error', () => {})
      socket.end('bye for now\n')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    try {
      const backendPort = (server.address() as { port: number }).port
      const port = await gatewayWith([route('fin', [backend('test/fin:3000')])], [pool('test/fin:3000', [backendPort])])
      const client = TcpClient.connect(port)
      await client.closed // the backend's FIN arrived
      expect(client.received).toBe('bye for now\n')
      expect(client.socket.destroyed).toBe(false)
      client.write('still talking\n')
      const deadline = Date.now() + 3_000
      while (!afterFin.includes('still talking\n') && Date.now() < deadline) await Bun.sleep(5)
      expect(afterFin).toBe('still talking\n')
      client.socket.end()
      expect(await client.closesWithin(3_000)).toBe(true)
    } finally {
      backendSocket?.destroy()
      server.close()
    }
  })
})

describe('TCP idle timeout', () => {
  test('defaults to 1 h, as Envoy tcp_proxy', () => {
    expect(DEFAULT_TCP_IDLE_TIMEOUT_MS).toBe(3_600_000)
  })

  test('a silent connection is closed; traffic in either direction keeps one open', async () => {
    const port = await gatewayWith([route('idle', [backend('test/alpha:3000')])], undefined, { tcpIdleTimeoutMs: 120 })
    const silent = TcpClient.connect(port)
    const chatty = TcpClient.connect(port)
    await Promise.all([silent.waitFor('hello from alpha\n'), chatty.waitFor('hello from alpha\n')])
    const opened = Date.now()
    // 360 ms of a message every 40 ms: three idle periods, never idle for one.
    for (let i = 0; i < 9; i++) {
      chatty.write(`tick ${i}\n`)
      await chatty.waitFor(`tick ${i}\n`)
      await Bun.sleep(40)
    }
    expect(await silent.closesWithin(1_000)).toBe(true)
    expect(Date.now() - opened).toBeGreaterThanOrEqual(110)
    expect(chatty.socket.destroyed || chatty.socket.readableEnded).toBe(false)
    expect(await chatty.closesWithin(1_000)).toBe(true)
    expect(dataplane.stats().tcpConnections).toBe(0)
  })

  test('0 disables it', async () => {
    const port = await gatewayWith([route('never', [backend('test/alpha:3000')])], undefined, { tcpIdleTimeoutMs: 0 })
    const client = TcpClient.connect(port)
    await client.waitFor('hello from alpha\n')
    expect(await client.closesWithin(150)).toBe(false)
    client.destroy()
  })
})
