/**
 * TLS clients for the HTTPS tests, on node:tls/node:http2 on purpose: a different stack from the
 * gateway's Bun.listen/Bun.serve, with the knobs the tests need (SNI independent of Host, ALPN,
 * source address, the served certificate).
 */
import * as tls from 'node:tls'
import http2 from 'node:http2'
import { X509Certificate } from 'node:crypto'

export interface Handshake {
  /** SHA-256 fingerprint of the certificate the server chose. */
  readonly fingerprint: string
  readonly alpn: string | false | null
}

export interface TlsTarget {
  readonly port: number
  /** SNI; omitted when undefined. */
  readonly servername?: string
  readonly alpn?: string[]
  readonly localAddress?: string
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256
}

function connect(target: TlsTarget): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: target.port,
      rejectUnauthorized: false,
      ...(target.servername !== undefined ? { servername: target.servername } : {}),
      ...(target.alpn ? { ALPNProtocols: target.alpn } : {}),
      ...(target.localAddress ? { localAddress: target.localAddress } : {}),
    })
    socket.once('secureConnect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Handshake only: which certificate and protocol did the server pick? */
export async function handshake(target: TlsTarget): Promise<Handshake> {
  const socket = await connect(target)
  const result = { fingerprint: socket.getPeerCertificate().fingerprint256, alpn: socket.alpnProtocol }
  socket.destroy()
  return result
}

export interface SimpleResponse {
  readonly status: number
  readonly body: string
  readonly protocol: string
}

/** One HTTP/1.1 request over TLS with an explicit Host header (may differ from the SNI). */
export async function h1Request(target: TlsTarget, host: string, path = '/'): Promise<SimpleResponse> {
  const socket = await connect({ ...target, alpn: ['http/1.1'] })
  return new Promise((resolve, reject) => {
    let raw = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (raw += d))
    socket.on('error', reject)
    socket.on('close', () => {
      const head = raw.slice(0, raw.indexOf('\r\n\r\n'))
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
      resolve({ status, body: raw.slice(head.length + 4), protocol: 'http/1.1' })
    })
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
  })
}

/** One HTTP/2 request over TLS (ALPN h2) with an explicit :authority. */
export async function h2Request(target: TlsTarget, authority: string, path = '/'): Promise<SimpleResponse> {
  const socket = await connect({ ...target, alpn: ['h2'] })
  if (socket.alpnProtocol !== 'h2') {
    socket.destroy()
    throw new Error(`server chose ALPN ${String(socket.alpnProtocol)}, not h2`)
  }
  const session = http2.connect(`https://127.0.0.1:${target.port}`, { createConnection: () => socket })
  try {
    return await new Promise<SimpleResponse>((resolve, reject) => {
      const stream = session.request({ ':path': path, ':authority': authority })
      let status = 0
      let body = ''
      stream.setEncoding('utf8')
      stream.on('response', (h) => (status = Number(h[':status'])))
      stream.on('data', (c: string) => (body += c))
      stream.on('end', () => resolve({ status, body, protocol: 'h2' }))
      stream.on('error', reject)
      session.on('error', reject)
    })
  } finally {
    session.close()
  }
}
