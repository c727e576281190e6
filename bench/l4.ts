/**
 * L4 benchmark (on demand, not in CI): TCP throughput and ping-pong round trips, through Portico's
 * L4Dataplane and direct to the backend, in the same run.
 *
 *   npx bun bench/l4.ts                      # defaults: 1 GiB download, 3 s ping-pong at 1 and 16 connections
 *   BENCH_MB=256 BENCH_SECONDS=2 npx bun bench/l4.ts
 *
 * Clients, backends (--backends) and the gateway (--gateway) run in three processes, so the direct
 * path crosses processes just as the proxied one does. On a small machine all three compete for
 * cores: compare the ratios, not the absolute numbers.
 */
import type { Socket } from 'bun'
import { L4Dataplane } from '../src/dataplane/l4/server.ts'
import { silentLogger } from '../src/dataplane/log.ts'
import type { Snapshot } from '../src/ir/types.ts'

const TOTAL_BYTES = Number(process.env.BENCH_MB ?? 1024) * 1024 * 1024
const PING_SECONDS = Number(process.env.BENCH_SECONDS ?? 3)
const PING_BYTES = 64

if (process.argv[2] === '--gateway') await runGateway(JSON.parse(process.argv[3]!) as Snapshot)
else if (process.argv[2] === '--backends') await runBackends()
else await main()

async function runBackends(): Promise<void> {
  const source = startSource()
  const echo = startEcho()
  console.log(JSON.stringify({ source: source.port, echo: echo.port }))
  for await (const _ of Bun.stdin.stream()) break
  process.exit(0)
}

async function runGateway(snapshot: Snapshot): Promise<void> {
  const dataplane = new L4Dataplane({ logger: silentLogger, hostname: '127.0.0.1' })
  const { problems } = await dataplane.apply(snapshot)
  console.log(JSON.stringify({ problems, rss: process.memoryUsage().rss }))
  for await (const _ of Bun.stdin.stream()) {
    // Any input (or EOF below) means: report and stop.
    break
  }
  console.error(`gateway RSS at end: ${(process.memoryUsage().rss / 1048576).toFixed(1)} MB`)
  await dataplane.stop()
  process.exit(0)
}

async function main(): Promise<void> {
  const backends = Bun.spawn([process.execPath, import.meta.path, '--backends'], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  const ports = JSON.parse(await firstLine(backends.stdout)) as { source: number; echo: number }
  const source = { port: ports.source }
  const echo = { port: ports.echo }
  const gatewaySourcePort = freePort()
  const gatewayEchoPort = freePort()
  const snapshot: Snapshot = {
    revision: 1,
    http: [],
    l4: [
      { port: gatewaySourcePort, protocol: 'TCP', routes: [l4Route('source')] },
      { port: gatewayEchoPort, protocol: 'TCP', routes: [l4Route('echo')] },
    ],
    pools: {
      'bench/source:1': pool('bench/source:1', source.port),
      'bench/echo:1': pool('bench/echo:1', echo.port),
    },
  }
  const gateway = Bun.spawn([process.execPath, import.meta.path, '--gateway', JSON.stringify(snapshot)], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const ready = await firstLine(gateway.stdout)
  const { problems } = JSON.parse(ready) as { problems: string[] }
  if (problems.length > 0) throw new Error(problems.join('; '))

  console.log(`L4 bench: ${TOTAL_BYTES / 1048576} MiB download, ${PING_SECONDS} s ping-pong (${PING_BYTES} B)\n`)
  const rows: [string, number, number, string][] = []

  const directMBs = await download(source.port)
  const gatewayMBs = await download(gatewaySourcePort)
  rows.push(['throughput (MB/s)', directMBs, gatewayMBs, 'MB/s'])

  for (const connections of [1, 16]) {
    const direct = await pingPong(echo.port, connections)
    const viaGateway = await pingPong(gatewayEchoPort, connections)
    rows.push([`ping-pong x${connections} (round trips/s)`, direct, viaGateway, 'rt/s'])
  }

  console.log('metric'.padEnd(34), 'direct'.padStart(12), 'portico'.padStart(12), 'ratio'.padStart(8))
  for (const [name, direct, viaGateway] of rows) {
    console.log(name.padEnd(34), fmt(direct).padStart(12), fmt(viaGateway).padStart(12), (viaGateway / direct).toFixed(2).padStart(8))
  }
  gateway.stdin.write('stop\n')
  gateway.stdin.flush()
  await gateway.exited
  backends.stdin.write('stop\n')
  backends.stdin.flush()
  await backends.exited
}

function l4Route(name: string) {
  return {
    id: `tcproute/bench/${name}/rule/0`,
    owner: { kind: 'TCPRoute', namespace: 'bench', name },
    hostnames: [],
    backends: [{ weight: 1, target: { pool: `bench/${name}:1` }, filters: [] }],
  }
}

function pool(key: string, port: number) {
  return { key, endpoints: [{ address: '127.0.0.1', port }], protocol: 'tcp' as const, policy: { type: 'RoundRobin' as const } }
}

/** Sends TOTAL_BYTES to each connection as fast as the connection takes them, then closes. */
function startSource() {
  const block = new Uint8Array(1024 * 1024).fill(0x61)
  const pump = (socket: Socket<{ sent: number; offset: number }>) => {
    const state = socket.data
    while (state.sent < TOTAL_BYTES) {
      const slice = block.subarray(state.offset, Math.min(block.length, state.offset + (TOTAL_BYTES - state.sent)))
      const written = socket.write(slice)
      if (written <= 0) return
      state.sent += written
      state.offset = (state.offset + written) % block.length
      if (written < slice.length) return
    }
    socket.end()
  }
  return Bun.listen<{ sent: number; offset: number }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.data = { sent: 0, offset: 0 }
        pump(socket)
      },
      drain: pump,
      data() {},
    },
  })
}

/** Echoes every byte (small messages: write never comes back short at this size). */
function startEcho() {
  return Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.setNoDelay(true)
      },
      data(socket, chunk) {
        socket.write(chunk)
      },
    },
  })
}

async function download(port: number): Promise<number> {
  let received = 0
  const started = performance.now()
  await new Promise<void>((resolve, reject) => {
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        data(_socket, chunk) {
          received += chunk.length
        },
        close() {
          resolve()
        },
        connectError(_socket, error) {
          reject(error)
        },
      },
    }).catch(reject)
  })
  const seconds = (performance.now() - started) / 1000
  if (received !== TOTAL_BYTES) throw new Error(`download short: ${received} of ${TOTAL_BYTES}`)
  return received / 1048576 / seconds
}

/** `connections` clients each doing send-64-B / await-64-B-back for PING_SECONDS; total round trips per second. */
async function pingPong(port: number, connections: number): Promise<number> {
  const message = new Uint8Array(PING_BYTES).fill(0x70)
  let roundTrips = 0
  let running = true
  const finished: Promise<void>[] = []
  for (let i = 0; i < connections; i++) {
    finished.push(
      new Promise<void>((resolve, reject) => {
        let pending = 0
        Bun.connect({
          hostname: '127.0.0.1',
          port,
          socket: {
            open(socket) {
              socket.setNoDelay(true)
              pending = PING_BYTES
              socket.write(message)
            },
            data(socket, chunk) {
              pending -= chunk.length
              if (pending > 0) return
              roundTrips++
              if (!running) {
                socket.end()
                return
              }
              pending = PING_BYTES
              socket.write(message)
            },
            close() {
              resolve()
            },
            connectError(_socket, error) {
              reject(error)
            },
          },
        }).catch(reject)
      }),
    )
  }
  const started = performance.now()
  await Bun.sleep(PING_SECONDS * 1000)
  running = false
  const seconds = (performance.now() - started) / 1000
  const counted = roundTrips
  await Promise.all(finished)
  return counted / seconds
}

/** A port the kernel just handed out (and that we released again). */
function freePort(): number {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  return port
}

function fmt(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader()
  let text = ''
  while (!text.includes('\n')) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  return text.split('\n')[0]!
}
