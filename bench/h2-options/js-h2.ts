// @ts-nocheck -- a measurement prototype, not product code (bench/h2-options.ts runs it).
/**
 * h2 served in JS on a Bun.listen TLS socket: frames, HPACK decode (with Huffman), responses
 * with literal fields, all frames of one read written at once. No flow-control accounting, no
 * header validation, no CONTINUATION, no request bodies: the least a front-side h2 layer
 * (issue 19 option b) would cost. `hello` answers from JS; `proxy` sends each stream as an
 * HTTP/1.1 request over raw keep-alive links to the upstream (what the front's direct path does).
 *
 *   bun bench/h2-options/js-h2.ts <port> <upstreamPort> hello|proxy <cert.pem> <key.pem>
 */
import { readFileSync } from 'node:fs'
const port = Number(process.argv[2]); const up = Number(process.argv[3]); const mode = process.argv[4] ?? 'hello'
const cert = readFileSync(process.argv[5]!, 'utf8'), key = readFileSync(process.argv[6]!, 'utf8')
// RFC 7541 Appendix B: Huffman code and bit length of each symbol (0-255, 256 = EOS).
const huff = { codes: [8184,8388568,268435426,268435427,268435428,268435429,268435430,268435431,268435432,16777194,1073741820,268435433,268435434,1073741821,268435435,268435436,268435437,268435438,268435439,268435440,268435441,268435442,1073741822,268435443,268435444,268435445,268435446,268435447,268435448,268435449,268435450,268435451,20,1016,1017,4090,8185,21,248,2042,1018,1019,249,2043,250,22,23,24,0,1,2,25,26,27,28,29,30,31,92,251,32764,32,4091,1020,8186,33,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,252,115,253,8187,524272,8188,16380,34,32765,3,35,4,36,5,37,38,39,6,116,117,40,41,42,7,43,118,44,8,9,45,119,120,121,122,123,32766,2044,16381,8189,268435452,1048550,4194258,1048551,1048552,4194259,4194260,4194261,8388569,4194262,8388570,8388571,8388572,8388573,8388574,16777195,8388575,16777196,16777197,4194263,8388576,16777198,8388577,8388578,8388579,8388580,2097116,4194264,8388581,4194265,8388582,8388583,16777199,4194266,2097117,1048553,4194267,4194268,8388584,8388585,2097118,8388586,4194269,4194270,16777200,2097119,4194271,8388587,8388588,2097120,2097121,4194272,2097122,8388589,4194273,8388590,8388591,1048554,4194274,4194275,4194276,8388592,4194277,4194278,8388593,67108832,67108833,1048555,524273,4194279,8388594,4194280,33554412,67108834,67108835,67108836,134217694,134217695,67108837,16777201,33554413,524274,2097123,67108838,134217696,134217697,67108839,134217698,16777202,2097124,2097125,67108840,67108841,268435453,134217699,134217700,134217701,1048556,16777203,1048557,2097126,4194281,2097127,2097128,8388595,4194282,4194283,33554414,33554415,16777204,16777205,67108842,8388596,67108843,134217702,67108844,67108845,134217703,134217704,134217705,134217706,134217707,268435454,134217708,134217709,134217710,134217711,134217712,67108846,1073741823], lens: [13,23,28,28,28,28,28,28,28,24,30,28,28,30,28,28,28,28,28,28,28,28,30,28,28,28,28,28,28,28,28,28,6,10,10,12,13,6,8,11,10,10,8,11,8,6,6,6,5,5,5,6,6,6,6,6,6,6,7,8,15,6,12,10,13,6,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,8,7,8,13,19,13,14,6,15,5,6,5,6,5,6,6,6,5,7,7,6,6,6,5,6,7,6,5,5,6,7,7,7,7,7,15,11,14,13,28,20,22,20,20,22,22,22,23,22,23,23,23,23,23,24,23,24,24,22,23,24,23,23,23,23,21,22,23,22,23,23,24,22,21,20,22,22,23,23,21,23,22,22,24,21,22,23,23,21,21,22,21,23,22,23,23,20,22,22,22,23,22,22,23,26,26,20,19,22,23,22,25,26,26,26,27,27,26,24,25,19,21,26,27,27,26,27,24,21,21,26,26,28,27,27,27,20,24,20,21,22,21,21,23,22,22,25,25,24,24,26,23,26,27,26,26,27,27,27,27,27,28,27,27,27,27,27,26,30] }
// Huffman decode tree: nodes as Int32Array pairs; leaf = -(sym+1)
const tree: number[] = [0, 0]
for (let sym = 0; sym < 257; sym++) {
  let node = 0; const code = huff.codes[sym]!; const len = huff.lens[sym]!
  for (let i = len - 1; i >= 0; i--) {
    const bit = (code >>> i) & 1; const slot = node * 2 + bit
    if (i === 0) tree[slot] = -(sym + 1)
    else { if (tree[slot] === 0) { tree.push(0, 0); tree[slot] = tree.length / 2 - 1 } node = tree[slot]! }
  }
}
const T = Int32Array.from(tree)
function huffDecode(b: Uint8Array, s: number, e: number): string {
  let out = ''; let node = 0
  for (let i = s; i < e; i++) { const byte = b[i]!
    for (let k = 7; k >= 0; k--) { const v = T[node * 2 + ((byte >> k) & 1)]!; if (v < 0) { out += String.fromCharCode(-v - 1); node = 0 } else node = v } }
  return out
}
const STATIC: [string, string][] = [['', ''], [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'], [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'], [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''], ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', '']]
class Hpack {
  dyn: [string, string][] = []
  at(i: number): [string, string] { return i < 62 ? STATIC[i]! : this.dyn[i - 62]! }
  decode(b: Uint8Array, s: number, e: number): [string, string][] {
    const out: [string, string][] = []; let p = s
    const int = (prefix: number) => { const max = (1 << prefix) - 1; let v = b[p++]! & max; if (v < max) return v; let m = 0; let c; do { c = b[p++]!; v += (c & 127) << m; m += 7 } while (c & 128); return v }
    const str = () => { const h = b[p]! & 128; const len = int(7); const v = h ? huffDecode(b, p, p + len) : Buffer.from(b.buffer, b.byteOffset + p, len).latin1Slice(); p += len; return v }
    while (p < e) {
      const c = b[p]!
      if (c & 128) out.push(this.at(int(7)))
      else if (c & 64) { const i = int(6); const name = i ? this.at(i)[0] : str(); const f: [string, string] = [name, str()]; out.push(f); this.dyn.unshift(f); if (this.dyn.length > 64) this.dyn.pop() }
      else if (c & 32) int(5)
      else { const i = int(4); const name = i ? this.at(i)[0] : str(); out.push([name, str()]) }
    }
    return out
  }
}
function frame(type: number, flags: number, stream: number, payload: Uint8Array | string): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload
  const h = Buffer.allocUnsafe(9 + p.length); h.writeUIntBE(p.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(stream, 5); h.set(p, 9); return h
}
function lit(name: string, value: string): string { return '\x00' + String.fromCharCode(name.length) + name + String.fromCharCode(value.length) + value }
// upstream pool for proxy mode
type Pending = { conn: Conn; stream: number; buf?: Buffer }
const idle: any[] = []
const UP = { open(s: any) { s.write(s.data.head) }, data(s: any, d: Uint8Array) {
    const p: Pending = s.data.p; const buf = p.buf ? Buffer.concat([p.buf, d]) : Buffer.from(d)
    const text = buf.latin1Slice(0, buf.length); const end = text.indexOf('\r\n\r\n'); if (end < 0) { p.buf = buf; return }
    const lines = text.slice(0, end).split('\r\n'); let hb = ''; let len = 0
    const status = lines[0]!.slice(9, 12)
    hb += status === '200' ? '\x88' : lit(':status', status)
    for (let i = 1; i < lines.length; i++) { const l = lines[i]!; const c = l.indexOf(':'); const n = l.slice(0, c).toLowerCase(); const v = l.slice(c + 1).trim(); if (n === 'content-length') len = Number(v); if (n !== 'connection' && n !== 'keep-alive') hb += lit(n, v) }
    if (buf.length < end + 4 + len) { p.buf = buf; return }
    s.data.p = undefined; idle.push(s)
    p.conn.respond(p.stream, hb, buf.subarray(end + 4, end + 4 + len))
  }, close() {}, error() {} }
class Conn {
  buf: Buffer | undefined; preface = false; hp = new Hpack(); out: Buffer[] = []; inData = false
  constructor(readonly s: any) {}
  respond(stream: number, hb: string, body: Uint8Array) {
    this.out.push(frame(1, 4, stream, hb), frame(0, 1, stream, body))
    if (!this.inData) this.flush()
  }
  flush() { if (this.out.length) { this.s.write(this.out.length === 1 ? this.out[0] : Buffer.concat(this.out)); this.out = [] } }
  onData(d: Uint8Array) {
    this.inData = true
    let b = this.buf ? Buffer.concat([this.buf, d]) : Buffer.from(d.buffer, d.byteOffset, d.byteLength); let p = 0
    if (!this.preface) { if (b.length < 24) { this.buf = Buffer.from(b); this.inData = false; return } p = 24; this.preface = true; this.out.push(frame(4, 0, 0, ''), frame(8, 0, 0, Buffer.from([0x7f, 0xff, 0, 0]))) }
    while (b.length - p >= 9) {
      const len = b.readUIntBE(p, 3); if (b.length - p < 9 + len) break
      const type = b[p + 3]!; const flags = b[p + 4]!; const stream = b.readUInt32BE(p + 5) & 0x7fffffff; const s = p + 9; const e = s + len
      if (type === 4 && !(flags & 1)) this.out.push(frame(4, 1, 0, ''))
      else if (type === 6 && !(flags & 1)) this.out.push(frame(6, 1, 0, b.subarray(s, e)))
      else if (type === 1) {
        let hs = s, he = e; if (flags & 8) { hs++; he -= b[s]! } if (flags & 32) hs += 5
        const fields = this.hp.decode(b, hs, he)
        if (mode === 'hello') this.respond(stream, '\x88' + lit('content-type', 'text/plain') + lit('content-length', '20'), Buffer.from('hello from upstream!'))
        else {
          let method = 'GET', path = '/', auth = ''; let head = ''
          for (const [n, v] of fields) { if (n === ':method') method = v; else if (n === ':path') path = v; else if (n === ':authority') auth = v; else if (n[0] !== ':') head += `${n}: ${v}\r\n` }
          head = `${method} ${path} HTTP/1.1\r\nhost: ${auth}\r\n${head}x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: https\r\n\r\n`
          const pending: Pending = { conn: this, stream }; const u = idle.pop()
          if (u) { u.data.p = pending; u.write(head) } else Bun.connect({ hostname: '127.0.0.1', port: up, data: { p: pending, head }, socket: UP } as any)
        }
      }
      p = e
    }
    this.buf = p < b.length ? Buffer.from(b.subarray(p)) : undefined
    this.inData = false; this.flush()
  }
}
Bun.listen<Conn>({ hostname: '127.0.0.1', port, tls: { cert, key, ALPNProtocols: Buffer.from('\x02h2', 'latin1') } as any, socket: {
  open(s) { s.data = new Conn(s) }, data(s, d) { s.data.onData(d) }, close() {}, error() {} } })
console.log('ready')
