/**
 * Config churn with nothing lost: 50 snapshots applied to the HTTP and L4 data planes while
 * HTTP load runs and three long-lived streams stay open (an SSE stream, a WebSocket, a TCP
 * connection through an L4 route). Every change keeps the streams' routes and backends; some
 * move other traffic between backends, add and remove routes and an extra L4 port, and every
 * tenth is broken (an invalid RegExp the compiler rejects) and must leave the old plan serving.
 *
 * test/e2e/file-mode.test.ts covers churn through the whole file-mode pipeline for plain HTTP;
 * this one goes straight to the data planes so it can add the long-lived streams.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { silentLogger } from '../../src/dataplane/log.ts'
import type { BackendPool, Snapshot } from '../../src/ir/types.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { forwardTo, listener, pool, port, rule, vhost } from '../dataplane/ir.ts'
import { freePort, startTcpEcho, TcpClient, type Backend } from '../l4/support/servers.ts'
import { startWsBackend, type WsBackend } from '../websocket/support/ws-backend.ts'

const CHANGES = 50

let v1: EchoUpstream
let v2: EchoUpstream
let ticker: Server<undefined>
let ws: WsBackend
let tcp: Backend
let http: HttpDataplane
let l4: L4Dataplane
let httpPort: number
let tcpPort: number
let extraTcpPort: number

/** An SSE backend that sends an event every 50 ms for as long as the client stays. */
function startTicker(): Server<undefined> {
  return Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    fetch() {
      let timer: Timer | undefined
      let n = 0
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          timer = setInterval(() => controller.enqueue(new TextEncoder().encode(`data: ${n++}\n\n`)), 50)
        },
        cancel() {
          clearInterval(timer)
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
    },
  })
}

function pools(): BackendPool[] {
  return [
    pool('v1', [v1.port]),
    pool('v2', [v2.port]),
    pool('ticker', [ticker.port!]),
    { ...pool('ws', [ws.port]), protocol: 'ws' },
    { ...pool('tcp', [tcp.port]), protocol: 'tcp' },
  ]
}

/** Change `i`: the streams' routes stay; the rest moves. Every tenth change is broken. */
function snapshotFor(i: number): Snapshot {
  const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
  // The streams' rules keep their ids, as the translator's (route/rule/match) ids do: a rule id
  // that changes is a rule removed, whose WebSocket sessions are closed with 1012.
  const rules = [
    rule({ id: 'httproute/test/events/rule/0/match/0', match: prefix('/events'), action: forwardTo('ticker'), streamIdleTimeoutMs: 0 }),
    rule({ id: 'httproute/test/echo/rule/0/match/0', match: prefix('/echo'), action: forwardTo('ws') }),
    rule({ match: prefix('/'), action: forwardTo(i % 2 ? 'v1' : 'v2') }),
  ]
  if (i % 3 === 0) rules.unshift(rule({ match: prefix(`/extra-${i}`), action: forwardTo('v1') }))
  if (i % 10 === 5) rules.unshift(rule({ match: { path: { type: 'RegularExpression', value: '/broken(' } } }))
  const tcpRoute = { id: 'tcproute/test/t/rule/0', owner: { kind: 'TCPRoute' as const, namespace: 'test', name: 't' }, hostnames: [], backends: [{ weight: 1, target: { pool: 'tcp' }, filters: [] }] }
  const l4Ports = [{ port: tcpPort, protocol: 'TCP' as const, routes: [tcpRoute] }]
  if (i % 4 === 1) l4Ports.push({ port: extraTcpPort, protocol: 'TCP' as const, routes: [tcpRoute] })
  return {
    revision: i + 1,
    http: [port(0, [listener([vhost('*', rules)])])],
    l4: l4Ports,
    pools: Object.fromEntries(pools().map((p) => [p.key, p])),
  }
}

beforeAll(async () => {
  v1 = startEcho('v1')
  v2 = startEcho('v2')
  ticker = startTicker()
  ws = startWsBackend()
  tcp = await startTcpEcho('tcp')
  tcpPort = await freePort()
  extraTcpPort = await freePort()
  http = new HttpDataplane({ hostname: '127.0.0.1' })
  l4 = new L4Dataplane({ hostname: '127.0.0.1', logger: silentLogger })
  const first = snapshotFor(0)
  const results = [await http.apply(first), await l4.apply(first)]
  for (const r of results) expect(r.problems).toEqual([])
  httpPort = http.boundPort(0)!
})

afterAll(async () => {
  await http.stop(true)
  await l4.stop()
  await Promise.all([v1.stop(), v2.stop(), ws.stop(), tcp.stop()])
  ticker.stop(true)
})

test(`${CHANGES} config changes under load: zero failed requests, long-lived SSE, WebSocket and TCP streams survive`, async () => {
  const base = `http://127.0.0.1:${httpPort}`

  // SSE: count events as they arrive.
  const sseAbort = new AbortController()
  const sse = await fetch(`${base}/events`, { signal: sseAbort.signal })
  expect(sse.status).toBe(200)
  let events = 0
  let sseError: unknown
  const sseDone = (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of sse.body!) events += decoder.decode(chunk).split('\n\n').length - 1
    } catch (err) {
      sseError = err
    }
  })()

  // WebSocket: an echo session kept busy.
  const socket = new WebSocket(`ws://127.0.0.1:${httpPort}/echo`)
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve()
    socket.onerror = () => reject(new Error('websocket did not open'))
  })
  let wsEchoes = 0
  let wsClosed: number | undefined
  socket.onmessage = () => wsEchoes++
  socket.onclose = (e) => (wsClosed = e.code)

  // TCP through the L4 route.
  const tcpClient = TcpClient.connect(tcpPort)
  await tcpClient.waitFor('hello from tcp\n')

  // HTTP load: 8 loops, every response must be a 200 from one of the backends.
  let requests = 0
  const failures: string[] = []
  let stop = false
  const load = Array.from({ length: 8 }, async () => {
    while (!stop) {
      const res = await fetch(`${base}/load`).catch((err: Error) => err)
      if (res instanceof Error) failures.push(res.message)
      else {
        const name = res.headers.get('x-echo-name')
        await res.arrayBuffer()
        if (res.status !== 200 || (name !== 'v1' && name !== 'v2')) failures.push(`status ${res.status} from ${name}`)
      }
      requests++
    }
  })

  let rejected = 0
  for (let i = 1; i <= CHANGES; i++) {
    const snap = snapshotFor(i)
    const [h, l] = await Promise.all([http.apply(snap), l4.apply(snap)])
    if (i % 10 === 5) {
      // The broken snapshot is refused; the previous plan keeps serving.
      expect(h.problems.length).toBeGreaterThan(0)
      rejected++
    } else expect([...h.problems, ...l.problems]).toEqual([])
    socket.send(`tick ${i}`)
    tcpClient.write(`line ${i}\n`)
    await Bun.sleep(40)
  }
  stop = true
  await Promise.all(load)

  const eventsAtEnd = events
  await Bun.sleep(300)
  expect(events).toBeGreaterThan(eventsAtEnd) // still flowing after the last change
  expect(sseError).toBeUndefined()
  await tcpClient.waitFor(`line ${CHANGES}\n`)
  expect(tcpClient.received).toContain('line 1\nline 2\n')
  expect(wsClosed).toBeUndefined()
  expect(wsEchoes).toBe(CHANGES)

  console.log(`churn: ${CHANGES} changes (${rejected} broken, rejected), ${requests} requests, ${failures.length} failures, ${eventsAtEnd} SSE events, ${wsEchoes} WebSocket echoes`)
  expect(failures).toEqual([])
  expect(requests).toBeGreaterThan(200)
  expect(rejected).toBe(5)

  socket.close()
  tcpClient.destroy()
  sseAbort.abort()
  await sseDone
}, 30_000)
