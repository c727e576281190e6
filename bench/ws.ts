/**
 * WebSocket 64-byte echo messages/s: direct to the backend vs through Portico, same run.
 *
 *   npx bun bench/ws.ts [--seconds 5] [--connections 32]
 *
 * Backend (echo) and gateway each run in their own process; this process is the client. Every
 * connection keeps one message in flight (send, await the echo, repeat), so the figure is
 * round trips per second. On demand only, never in CI.
 */
import { parseArgs } from 'node:util'
import { GatewayProcess } from '../test/support/gateway-client.ts'
import type { Snapshot } from '../src/ir/types.ts'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, connections: { type: 'string', default: '32' } } })
const SECONDS = Number(values.seconds)
const CONNECTIONS = Number(values.connections)
const MESSAGE = 'x'.repeat(64)

const ECHO = `
const s = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch(req, srv) { return srv.upgrade(req) ? undefined : new Response('ws only', { status: 426 }) },
  websocket: { message(ws, m) { ws.send(m) } } })
console.log(s.port)`

async function startEcho(): Promise<{ port: number; kill(): void }> {
  const child = Bun.spawn([process.execPath, '-e', ECHO], { stdout: 'pipe', stderr: 'inherit' })
  const reader = child.stdout.getReader()
  const { value } = await reader.read()
  return { port: Number(new TextDecoder().decode(value).trim()), kill: () => child.kill() }
}

async function run(url: string): Promise<number> {
  let messages = 0
  const deadline = Date.now() + SECONDS * 1000
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const ws = new WebSocket(url, { perMessageDeflate: false } as Bun.WebSocketOptions)
      await new Promise((resolve, reject) => {
        ws.onopen = resolve
        ws.onerror = reject
      })
      await new Promise<void>((resolve) => {
        ws.onmessage = () => {
          messages++
          if (Date.now() < deadline) ws.send(MESSAGE)
          else resolve()
        }
        ws.send(MESSAGE)
      })
      ws.close(1000)
    }),
  )
  return messages / SECONDS
}

const echo = await startEcho()
const snapshot: Snapshot = {
  revision: 1,
  l4: [],
  http: [{ port: 0, protocol: 'HTTP', listeners: [{ id: 'gateway/bench/gw/ws', virtualHosts: [{ hostname: '*', rules: [{
    id: 'httproute/bench/ws/rule/0/match/0',
    owner: { kind: 'HTTPRoute', namespace: 'bench', name: 'ws' },
    match: { path: { type: 'PathPrefix', value: '/' }, headers: [], query: [] },
    filters: [],
    action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'bench/echo:80' }, filters: [] }] },
  }] }] }] }],
  pools: { 'bench/echo:80': { key: 'bench/echo:80', endpoints: [{ address: '127.0.0.1', port: echo.port }], protocol: 'ws', policy: { type: 'RoundRobin' } } },
}
const gateway = await GatewayProcess.start(snapshot)
try {
  await run(`ws://127.0.0.1:${echo.port}/`) // warm-up
  const direct = await run(`ws://127.0.0.1:${echo.port}/`)
  const proxied = await run(`ws://127.0.0.1:${gateway.port}/`)
  console.log(`64-byte echo, ${CONNECTIONS} connections, ${SECONDS} s each`)
  console.log(`direct:  ${Math.round(direct).toLocaleString('en')} msg/s`)
  console.log(`portico: ${Math.round(proxied).toLocaleString('en')} msg/s`)
  console.log(`ratio:   ${(proxied / direct).toFixed(2)}`)
} finally {
  await gateway.stop()
  echo.kill()
}
