#!/usr/bin/env bun
/**
 * Fixed-rate (open-loop) HTTP/1.1 load, latency measured from each request's *intended* send
 * time (wrk2's method; wrk2 is not packaged here): a server that stalls is charged for every
 * request that should have gone out meanwhile, not only for the one it was holding (no
 * coordinated omission). wrk's closed loop only waits, so its p99 hides stalls.
 *
 *   bun bench/open-loop.ts <port> <rate req/s> <seconds> [connections=64] [path=/] [host]
 *
 * Each of `connections` keep-alive connections owns an even share of the rate, on a schedule
 * staggered across connections; a request goes out at its time, or as soon as the previous
 * answer on its connection is in when that is later (its latency then includes the wait). The
 * first second is warm-up and not recorded. Prints one JSON line: the offered and achieved
 * rate, percentiles in ms, errors (non-2xx, closed connections) and requests never sent
 * (the schedule was still behind when the time was up).
 */
import type { Socket } from 'bun'

const [port, rate, seconds, connections = 64, path = '/', hostArg] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5] ?? 64), process.argv[6] ?? '/', process.argv[7]]
if (!port || !rate || !seconds) {
  console.error('usage: bun bench/open-loop.ts <port> <rate> <seconds> [connections] [path] [host]')
  process.exit(2)
}
const REQUEST = `GET ${path} HTTP/1.1\r\nHost: ${hostArg ?? `127.0.0.1:${port}`}\r\n\r\n`
const WARMUP_MS = 1000
const interval = (1000 * connections) / rate

interface Conn {
  socket?: Socket<Conn>
  /** Intended send time of the request in flight (-1: none). */
  inFlight: number
  /** Intended time of the next request. */
  next: number
  buf: string
  timer?: Timer
}

const latencies: number[] = []
let errors = 0
let completed = 0
let start = 0
let end = 0
let done = false

function parseOne(c: Conn): boolean {
  const headEnd = c.buf.indexOf('\r\n\r\n')
  if (headEnd < 0) return false
  const head = c.buf.slice(0, headEnd)
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  const total = headEnd + 4 + (m ? Number(m[1]) : 0)
  if (c.buf.length < total) return false
  if (!/^HTTP\/1\.1 2/.test(head)) errors++
  c.buf = c.buf.slice(total)
  return true
}

function send(c: Conn, now: number): void {
  // A timer may fire a little early: the request then counts from when it really left.
  c.inFlight = Math.min(c.next, now)
  c.next += interval
  c.socket!.write(REQUEST)
}

function schedule(c: Conn): void {
  if (done || c.inFlight >= 0) return
  const now = performance.now()
  if (c.next <= now) return send(c, now)
  c.timer = setTimeout(() => {
    c.timer = undefined
    if (!done && c.inFlight < 0) send(c, performance.now())
  }, c.next - now)
}

const conns: Conn[] = []
for (let i = 0; i < connections; i++) {
  const c: Conn = { inFlight: -1, next: 0, buf: '' }
  c.socket = await Bun.connect<Conn>({
    hostname: '127.0.0.1',
    port,
    data: c,
    socket: {
      data(socket, bytes) {
        const conn = socket.data
        conn.buf += bytes.toString('latin1')
        while (conn.inFlight >= 0 && parseOne(conn)) {
          const now = performance.now()
          if (conn.inFlight >= start + WARMUP_MS && now <= end) {
            latencies.push(now - conn.inFlight)
            completed++
          }
          conn.inFlight = -1
          schedule(conn)
        }
      },
      close(socket) {
        if (!done) errors++
        socket.data.inFlight = -1
      },
      error() {},
    },
  })
  conns.push(c)
}

start = performance.now()
end = start + seconds * 1000
for (let i = 0; i < conns.length; i++) {
  conns[i]!.next = start + (i * interval) / connections
  schedule(conns[i]!)
}
await Bun.sleep(seconds * 1000)
done = true
// Requests whose time came but that were never sent: the server was that far behind.
let unsent = 0
for (const c of conns) {
  if (c.timer) clearTimeout(c.timer)
  if (c.next < end) unsent += Math.floor((end - c.next) / interval) + 1
  c.socket?.end()
}
latencies.sort((a, b) => a - b)
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN
const measuredSeconds = (seconds * 1000 - WARMUP_MS) / 1000
console.log(
  JSON.stringify({ offered: rate, achieved: completed / measuredSeconds, completed, errors, unsent, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: latencies.at(-1) ?? NaN }),
)
process.exit(0)
