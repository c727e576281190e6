/**
 * Seeded mutational fuzzer of raw HTTP/1.1 requests against a gateway (on demand; a short run is
 * test/reliability/fuzz.test.ts).
 *
 *   npx bun bench/fuzz-http.ts                         # in-process gateway + echo backend, seed 1, 5000 cases
 *   npx bun bench/fuzz-http.ts --seed 7 --cases 50000
 *   npx bun bench/fuzz-http.ts --target 127.0.0.1:8080 # a running gateway (its backends must not answer 500)
 *
 * Each case takes a valid request from a small corpus, applies 1-4 mutations (byte flips, header
 * duplication, CRLF/CR/LF/NUL injection, huge values, truncation, random methods and versions,
 * chunk-size and Content-Length games) and writes it on its own connection, in one to three
 * writes. Checks: the gateway never crashes (it answers a sanity request at the end), never
 * answers 500 from itself (a 5xx without the backend's x-echo-name is the gateway's; only 500 is
 * an error, 502/503/504 are counted: they mean the backend refused what was forwarded), every
 * answer starts with a status line, and the gateway's memory is bounded (in-process: RSS after GC).
 */
import { HttpDataplane } from '../src/dataplane/http/server.ts'
import type { Snapshot } from '../src/ir/types.ts'
import net from 'node:net'

export interface FuzzOptions {
  readonly port: number
  readonly seed: number
  readonly cases: number
  readonly concurrency?: number
  /** How long to wait for more bytes before treating a case as done (truncated requests hang by design). */
  readonly quietMs?: number
}

export interface FuzzReport {
  cases: number
  /** Responses by status code (every status line seen, several on a kept-alive connection). */
  readonly statuses: Record<number, number>
  /** Cases the gateway closed without answering. */
  closedSilently: number
  /** Cases still open after quietMs (truncated heads: Bun waits up to its header deadline). */
  leftOpen: number
  /** 5xx the gateway produced itself, by status and body line. */
  readonly gateway5xx: Record<string, number>
  /** Cases that break a rule: a gateway 500, or an answer that does not start with a status line. */
  readonly failures: { seed: number; request: string; answer: string }[]
}

/** mulberry32: small, fast, good enough to pick mutations; the seed reproduces a run exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const CORPUS = [
  'GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n',
  'GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: app.test:8080\r\nCookie: a=b; c=d\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n',
  'POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world',
  'POST /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
  'PUT /items/1 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n{}',
  'GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  'GET /h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n',
  'GET /old HTTP/1.0\r\n\r\n',
  'DELETE /items/2 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n',
  'GET /a HTTP/1.1\r\nHost: app.test\r\n\r\nGET /b HTTP/1.1\r\nHost: app.test\r\n\r\n',
]

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'PRI', 'get', 'G ET', 'FOO', '', 'GET\0']
const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/0.9', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/1.1 ', 'http/1.1', 'HTTP/11', 'HTTP/1.1\0', '']
const INJECTIONS = ['\r\n', '\n', '\r', '\0', '\r\n\r\n', ' ', '\t', ':', '\x7f', '\x01', '\xff', '\r\nContent-Length: 5', '\r\nTransfer-Encoding: chunked', '\r\nHost: evil.test']
const EXTRA_HEADERS = [
  'Content-Length: 5',
  'Content-Length: -1',
  'Content-Length: 99999999999999999999',
  'Content-Length: 0x10',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip',
  'Transfer-Encoding: chunked, identity',
  'Host: evil.test',
  'Host:',
  'Connection: close',
  'Connection: keep-alive, Upgrade',
  'Upgrade: h2c',
  'Expect: 100-continue',
  'X-Forwarded-For: 1.2.3.4',
  ' Folded: continuation',
]
const CHUNK_SIZES = ['ffffffffffffffffff', '-1', 'zz', '5;ext=1', '0x5', '5 ', '', '00000000005', '1\r\nx\r\n0']

type Mutation = (req: string, r: () => number) => string

const pick = <T>(items: readonly T[], r: () => number): T => items[Math.floor(r() * items.length)]!
const at = (s: string, r: () => number) => Math.floor(r() * (s.length + 1))

const MUTATIONS: Record<string, Mutation> = {
  flipByte: (s, r) => {
    if (!s) return s
    const i = Math.floor(r() * s.length)
    return s.slice(0, i) + String.fromCharCode(Math.floor(r() * 256)) + s.slice(i + 1)
  },
  flipBit: (s, r) => {
    if (!s) return s
    const i = Math.floor(r() * s.length)
    return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << Math.floor(r() * 8))) + s.slice(i + 1)
  },
  duplicateHeader: (s, r) => {
    const lines = s.split('\r\n')
    const end = lines.indexOf('')
    if (end < 2) return s
    const i = 1 + Math.floor(r() * (end - 1))
    lines.splice(i, 0, lines[i]!)
    return lines.join('\r\n')
  },
  addHeader: (s, r) => {
    const i = s.indexOf('\r\n')
    return i < 0 ? s : s.slice(0, i + 2) + pick(EXTRA_HEADERS, r) + '\r\n' + s.slice(i + 2)
  },
  inject: (s, r) => {
    const i = at(s, r)
    return s.slice(0, i) + pick(INJECTIONS, r) + s.slice(i)
  },
  hugeValue: (s, r) => {
    const i = s.indexOf('\r\n')
    const size = pick([100, 4000, 9000, 17_000, 40_000], r)
    return i < 0 ? s : s.slice(0, i + 2) + `X-Huge: ${'A'.repeat(size)}\r\n` + s.slice(i + 2)
  },
  hugeTarget: (s, r) => s.replace(/^(\S*) (\S*)/, (_m, method: string, target: string) => `${method} ${target}${target.includes('?') ? '&' : '?'}p=${'B'.repeat(pick([1000, 8200, 20_000], r))}`),
  truncate: (s, r) => s.slice(0, Math.floor(r() * s.length)),
  method: (s, r) => s.replace(/^\S*/, pick(METHODS, r)),
  version: (s, r) => s.replace(/HTTP\/\d\.\d/, pick(VERSIONS, r)),
  chunkSize: (s, r) => (s.includes('chunked') ? s.replace(/\r\n\r\n[0-9a-f]+\r\n/, `\r\n\r\n${pick(CHUNK_SIZES, r)}\r\n`) : s),
  deleteRange: (s, r) => {
    const i = at(s, r)
    return s.slice(0, i) + s.slice(i + 1 + Math.floor(r() * 8))
  },
  lfOnly: (s) => s.replace(/\r\n/g, '\n'),
}
const MUTATION_NAMES = Object.keys(MUTATIONS)

/** The bytes of case `seed`: deterministic. */
export function fuzzCase(seed: number): string {
  const r = rng(seed)
  let req = pick(CORPUS, r)
  const count = 1 + Math.floor(r() * 4)
  for (let i = 0; i < count; i++) req = MUTATIONS[pick(MUTATION_NAMES, r)]!(req, r)
  return req
}

/** Write one case, in one to three pieces, and collect the answer. */
function runCase(port: number, request: string, seed: number, quietMs: number): Promise<{ answer: string; closed: boolean }> {
  const r = rng(seed ^ 0x5bd1e995)
  const bytes = Buffer.from(request, 'latin1')
  const cuts = [0, ...Array.from({ length: Math.floor(r() * 3) }, () => Math.floor(r() * bytes.length)).sort((a, b) => a - b), bytes.length]
  return new Promise((resolve) => {
    let answer = ''
    let quiet: Timer | undefined
    let done = false
    const socket = net.connect(port, '127.0.0.1', async () => {
      for (let i = 0; i + 1 < cuts.length; i++) {
        if (socket.destroyed) return
        socket.write(bytes.subarray(cuts[i], cuts[i + 1]))
        if (i + 2 < cuts.length) await Bun.sleep(1)
      }
      arm()
    })
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      clearTimeout(quiet)
      socket.destroy()
      resolve({ answer, closed })
    }
    const arm = () => {
      clearTimeout(quiet)
      quiet = setTimeout(() => finish(false), quietMs)
    }
    socket.on('data', (d) => {
      answer += d.toString('latin1')
      arm()
    })
    socket.on('error', () => finish(true))
    socket.on('close', () => finish(true))
  })
}

export async function fuzzHttp(opts: FuzzOptions): Promise<FuzzReport> {
  const report: FuzzReport = { cases: 0, statuses: {}, closedSilently: 0, leftOpen: 0, gateway5xx: {}, failures: [] }
  const quietMs = opts.quietMs ?? 300
  let next = 0
  const worker = async () => {
    while (next < opts.cases) {
      const seed = opts.seed * 1_000_003 + next++
      const request = fuzzCase(seed)
      const { answer, closed } = await runCase(opts.port, request, seed, quietMs)
      report.cases++
      judge(report, seed, request, answer, closed)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker))
  return report
}

function judge(report: FuzzReport, seed: number, request: string, answer: string, closed: boolean): void {
  if (answer === '') {
    if (closed) report.closedSilently++
    else report.leftOpen++
    return
  }
  const fail = (why: string): void => void report.failures.push({ seed, request: request.slice(0, 400), answer: `${why}: ${answer.slice(0, 300)}` })
  // "PRI" opens the HTTP/2 prior-knowledge preface: Bun.serve (http2: true) answers with h2 frames.
  if (request.startsWith('PRI') && answer.charCodeAt(0) === 0) return
  if (!answer.startsWith('HTTP/1.1 ') && !answer.startsWith('HTTP/1.0 ')) return fail('not a status line')
  for (const m of answer.matchAll(/HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n/g)) {
    const status = Number(m[1])
    report.statuses[status] = (report.statuses[status] ?? 0) + 1
    const fromBackend = /\r\nx-echo-name:|^x-echo-name:/i.test(`\r\n${m[2]}`)
    if (status >= 500 && !fromBackend) {
      const reason = /\r\n\r\n([^\n]*)/.exec(answer.slice(m.index))?.[1] ?? ''
      const key = `${status} ${reason}`.trim()
      report.gateway5xx[key] = (report.gateway5xx[key] ?? 0) + 1
      if (status === 500) fail('gateway 500')
    }
  }
}

/** A throwaway gateway with one catch-all route to an echo backend that never answers 500. */
export async function startFuzzTarget(): Promise<{ port: number; rss(): number; stop(): Promise<void> }> {
  const backend = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      if (req.body) await req.arrayBuffer().catch(() => undefined)
      return new Response('ok', { headers: { 'x-echo-name': 'fuzz-backend' } })
    },
    // The backend's own failures must not look like the gateway's.
    error: () => new Response('backend error', { status: 599, headers: { 'x-echo-name': 'fuzz-backend' } }),
  })
  const snapshot: Snapshot = {
    revision: 1,
    http: [{ port: 0, protocol: 'HTTP', listeners: [{ id: 'gateway/fuzz/gw/http', virtualHosts: [{ hostname: '*', rules: [{ id: 'httproute/fuzz/r/rule/0/match/0', owner: { kind: 'HTTPRoute', namespace: 'fuzz', name: 'r' }, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], query: [] }, filters: [], action: { kind: 'forward', backends: [{ weight: 1, target: { pool: 'echo' }, filters: [] }] } }] }] }] }],
    l4: [],
    pools: { echo: { key: 'echo', endpoints: [{ address: '127.0.0.1', port: backend.port! }], protocol: 'http', policy: { type: 'RoundRobin' } } },
  }
  const dp = new HttpDataplane({ hostname: '127.0.0.1' })
  const { problems } = await dp.apply(snapshot)
  if (problems.length) throw new Error(problems.join('; '))
  return {
    port: dp.boundPort(0)!,
    rss: () => {
      Bun.gc(true)
      return process.memoryUsage().rss
    },
    stop: async () => {
      await dp.stop(true)
      await backend.stop(true)
    },
  }
}

/** One plain request, to show the gateway still serves. */
export async function sanityCheck(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/sanity`).catch(() => undefined)
  await res?.arrayBuffer()
  return res?.status ?? 0
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

if (import.meta.main) {
  const seed = Number(arg('--seed') ?? 1)
  const cases = Number(arg('--cases') ?? 5000)
  const target = arg('--target')
  const local = target ? undefined : await startFuzzTarget()
  const port = local?.port ?? Number(target!.split(':').at(-1))
  const before = local?.rss()
  const started = Date.now()
  const report = await fuzzHttp({ port, seed, cases, concurrency: Number(arg('--concurrency') ?? 16) })
  const after = local?.rss()
  const sane = await sanityCheck(port)
  console.log(JSON.stringify({ seed, ...report, failures: report.failures.length, seconds: (Date.now() - started) / 1000, sanity: sane, rssGrowthMB: before && after ? Math.round((after - before) / 1e5) / 10 : undefined }, null, 2))
  for (const f of report.failures.slice(0, 10)) console.log(JSON.stringify(f))
  await local?.stop()
  process.exit(report.failures.length === 0 && sane === 200 ? 0 : 1)
}
