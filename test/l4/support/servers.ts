/**
 * Real backends and clients for the L4 tests. They use node:net/node:tls/node:dgram on purpose:
 * a different socket implementation from the gateway's Bun.listen/Bun.connect.
 */
import { spawnSync } from 'node:child_process'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'

export interface Backend {
  readonly name: string
  readonly port: number
  /** Connections (or UDP datagrams) the backend has seen. */
  hits: number
  stop(): Promise<void>
}

function listenOn(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
}

function stopper(server: Server, sockets: Set<Socket>): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    })
}

/** Says "hello from <name>\n", then echoes; ends its side when the client ends its side. */
export async function startTcpEcho(name: string): Promise<Backend> {
  const sockets = new Set<Socket>()
  const backend = { name, port: 0, hits: 0, stop: async () => {} }
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    backend.hits++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.write(`hello from ${name}\n`)
    socket.pipe(socket)
  })
  backend.port = await listenOn(server)
  backend.stop = stopper(server, sockets)
  return backend
}

/** TLS backend: says "hello from <name> sni=<servername>\n", then echoes. */
export async function startTlsEcho(name: string, certificate: Certificate): Promise<Backend> {
  const sockets = new Set<Socket>()
  const backend = { name, port: 0, hits: 0, stop: async () => {} }
  const server = tls.createServer({ cert: certificate.certPem, key: certificate.keyPem }, (socket) => {
    backend.hits++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.write(`hello from ${name} sni=${socket.servername}\n`)
    socket.pipe(socket)
  })
  backend.port = await listenOn(server)
  backend.stop = stopper(server, sockets)
  return backend
}

/** Replies to each datagram with {"backend": name, "echo": <payload>}. */
export async function startUdpEcho(name: string): Promise<Backend & { socket: UdpSocket }> {
  const socket = createSocket('udp4')
  const backend = { name, port: 0, hits: 0, socket, stop: async () => {} }
  socket.on('message', (message, remote) => {
    backend.hits++
    socket.send(JSON.stringify({ backend: name, echo: message.toString() }), remote.port, remote.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  backend.port = socket.address().port
  backend.stop = () => new Promise((resolve) => socket.close(() => resolve()))
  return backend
}

export interface Certificate {
  readonly certPem: string
  readonly keyPem: string
}

/** A self-signed EC certificate for `hostnames` (first one is the CN), made with openssl. */
export function makeCertificate(hostnames: string[]): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'portico-l4-cert-'))
  try {
    const san = hostnames.map((hostname) => `DNS:${hostname}`).join(',')
    const result = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2',
      '-subj', `/CN=${hostnames[0]}`, '-addext', `subjectAltName=${san}`,
    ])
    if (result.status !== 0) throw new Error(`openssl failed: ${result.stderr.toString()}`)
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer()
  const port = await listenOn(server)
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A plain TCP client that collects everything it receives. */
export class TcpClient {
  received = ''
  /** Resolves when the peer closed or half-closed (FIN): nothing more will arrive. */
  readonly closed: Promise<void>
  readonly socket: Socket

  private constructor(socket: Socket) {
    this.socket = socket
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => (this.received += text))
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => {
      socket.once('end', () => resolve())
      socket.once('close', () => resolve())
    })
  }

  static connect(port: number): TcpClient {
    return new TcpClient(connect({ host: '127.0.0.1', port, allowHalfOpen: true }))
  }

  static wrap(socket: Socket): TcpClient {
    return new TcpClient(socket)
  }

  write(text: string): void {
    this.socket.write(text)
  }

  /** Resolves once the received text contains `text`; rejects if the socket closes first. */
  async waitFor(text: string, timeoutMs = 5_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    while (!this.received.includes(text)) {
      if (this.socket.destroyed || this.socket.readableEnded) {
        throw new Error(`closed before ${JSON.stringify(text)}; got ${JSON.stringify(this.received)}`)
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(this.received)}`)
      await Bun.sleep(5)
    }
    return this.received
  }

  /** Whether the peer closed within `timeoutMs` (true) or the socket is still open (false). */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), Bun.sleep(timeoutMs).then(() => false)])
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** Connects, reads the backend's greeting line, disconnects. Undefined when the gateway closed instead. */
export async function greeting(port: number): Promise<string | undefined> {
  const client = TcpClient.connect(port)
  try {
    await client.waitFor('\n', 3_000)
    return client.received.split('\n')[0]
  } catch {
    return undefined
  } finally {
    client.destroy()
  }
}

/** TLS client through the gateway; resolves with the socket once the handshake is done. */
export function tlsConnect(port: number, servername: string | undefined, ca?: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: ca !== undefined })
    socket.once('secureConnect', () => resolve(socket))
    socket.once('error', reject)
    socket.once('close', () => reject(new Error('closed before handshake')))
  })
}

/** Reads from a TLS socket until `text` arrives. */
export function readUntil(socket: tls.TLSSocket, text: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = ''
    const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(received)}`)), timeoutMs)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      received += chunk
      if (received.includes(text)) {
        clearTimeout(timer)
        resolve(received)
      }
    })
    socket.once('close', () => reject(new Error(`closed; got ${JSON.stringify(received)}`)))
  })
}

export interface OpensslSession {
  /** Everything s_client printed: certificate details, verify result, then the server's bytes. */
  readonly output: string
  readonly exitCode: number
}

/**
 * The real `openssl s_client` through the gateway with SNI `servername`, verifying the chain
 * against `caPem` and the name: waits for `expect` (the server's greeting), sends `send`, waits
 * for its echo, then closes stdin so s_client hangs up.
 */
export async function opensslClient(port: number, servername: string, caPem: string, expect: string, send = 'ping\n'): Promise<OpensslSession> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-l4-sclient-'))
  const caFile = join(dir, 'ca.pem')
  await Bun.write(caFile, caPem)
  const proc = Bun.spawn(
    ['openssl', 's_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-CAfile', caFile, '-verify_return_error', '-verify_hostname', servername],
    { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' },
  )
  const reader = proc.stdout.getReader()
  let output = ''
  /** Reads until `text` appears at or after `from`. */
  const readUntilText = async (text: string, from = 0) => {
    const timer = setTimeout(() => proc.kill(), 5_000)
    try {
      while (output.indexOf(text, from) < 0) {
        const { value, done } = await reader.read()
        if (done) throw new Error(`s_client ended before ${JSON.stringify(text)}; got ${output}${await new Response(proc.stderr).text()}`)
        output += new TextDecoder().decode(value)
      }
    } finally {
      clearTimeout(timer)
    }
  }
  try {
    await readUntilText(expect)
    const before = output.length
    proc.stdin.write(send)
    proc.stdin.flush()
    await readUntilText(send, before)
    proc.stdin.end()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      output += new TextDecoder().decode(value)
    }
    return { output, exitCode: await proc.exited }
  } finally {
    proc.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}
