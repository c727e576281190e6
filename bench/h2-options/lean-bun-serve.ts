// @ts-nocheck -- a measurement prototype, not product code (bench/h2-options.ts runs it).
/**
 * The leanest Bun.serve-based h2 proxy: a fetch handler that forwards each request over raw
 * HTTP/1.1 keep-alive links (no pipeline, no policies), either behind a TLS front on Bun.listen
 * with a loopback h2c relay (`relay`, Portico's current shape) or with Bun.serve terminating TLS
 * and h2 itself (`direct`). The floor of any Bun.serve-based h2 design.
 *
 *   bun bench/h2-options/lean-bun-serve.ts <port> <upstreamPort> relay|direct <cert.pem> <key.pem>
 */
import { readFileSync } from 'node:fs'
const port = Number(process.argv[2]); const up = Number(process.argv[3]); const mode = process.argv[4] ?? 'relay'
const cert = readFileSync(process.argv[5]!, 'utf8'), key = readFileSync(process.argv[6]!, 'utf8')
type P = { resolve: (r: Response) => void; buf?: Uint8Array }
const idle: any[] = []
const H = { open(s: any) {}, data(s: any, d: Uint8Array) {
    const p: P = s.data.p; const buf = p.buf ? Buffer.concat([p.buf, d]) : Buffer.from(d)
    const text = buf.latin1Slice(0, buf.length); const end = text.indexOf('\r\n\r\n'); if (end < 0) { p.buf = buf; return }
    const lines = text.slice(0, end).split('\r\n'); const status = Number(lines[0]!.slice(9, 12)); const headers: [string, string][] = []
    let len = 0
    for (let i = 1; i < lines.length; i++) { const l = lines[i]!; const c = l.indexOf(':'); const n = l.slice(0, c).toLowerCase(); const v = l.slice(c + 1).trim(); if (n === 'content-length') len = Number(v); if (n !== 'connection' && n !== 'keep-alive') headers.push([n, v]) }
    if (buf.length < end + 4 + len) { p.buf = buf; return }
    s.data.p = undefined; idle.push(s)
    p.resolve(new Response(buf.subarray(end + 4, end + 4 + len), { status, headers }))
  }, close() {}, error() {} }
function forward(req: Request): Promise<Response> {
  const url = req.url; const path = url.slice(url.indexOf('/', 8))
  let head = `${req.method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n`
  req.headers.forEach((v, n) => { if (n !== 'host' && n !== 'connection') head += `${n}: ${v}\r\n` })
  head += 'x-forwarded-for: 127.0.0.1\r\n\r\n'
  return new Promise<Response>((resolve) => {
    const s = idle.pop()
    if (s) { s.data.p = { resolve }; s.write(head); return }
    Bun.connect({ hostname: '127.0.0.1', port: up, data: { p: { resolve } }, socket: { ...H, open(s: any) { s.write(head) } } })
  })
}
if (mode === 'direct') { Bun.serve({ port, hostname: '127.0.0.1', http2: true, tls: { cert, key }, fetch: forward } as any) } else {
const inner = Bun.serve({ port: 0, hostname: '127.0.0.1', http2: true, fetch: forward } as any)
type D = { link?: any; q: Uint8Array[] }
Bun.listen<D>({ hostname: '127.0.0.1', port, tls: { cert, key, ALPNProtocols: Buffer.from('\x02h2', 'latin1') } as any, socket: {
  open(s) { s.data = { q: [] }; Bun.connect({ hostname: '127.0.0.1', port: inner.port, data: s, socket: {
      open(l: any) { s.data.link = l; for (const b of s.data.q) l.write(b); s.data.q = [] },
      data(l: any, d: Uint8Array) { s.write(d) }, close() { s.end() }, error() { s.end() } } } as any) },
  data(s, d) { if (s.data.link) s.data.link.write(d); else s.data.q.push(Uint8Array.from(d)) },
  close(s) { s.data.link?.end() }, error(s) { s.data.link?.end() },
} }) }
console.log('ready')
