#!/usr/bin/env bun
/**
 * Can two Portico workers (threads of one process, each with its own TLS contexts) resume each
 * other's TLS sessions? Probes every Bun API that could share ticket keys or a session cache and
 * prints what each does, so the answer can be re-checked on a new Bun:
 *
 *   npx bun bench/tls-ticket-sharing.ts
 *
 * A "server" is Bun.listen with `tls`, as the front's contexts are used; the client is node:tls
 * with the session of a first connection (TLS 1.2 ticket, TLS 1.3 PSK ticket).
 */
import * as tls from 'node:tls'
import { createSecureContext } from 'node:tls'
import { makeCertificate } from '../test/l4/support/servers.ts'

const cert = makeCertificate(['resume.test'])
const ANSWER = 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'
type Version = 'TLSv1.2' | 'TLSv1.3'

function listen(tlsOptions: Record<string, unknown>): number {
  return Bun.listen({ hostname: '127.0.0.1', port: 0, tls: tlsOptions as never, socket: { data: (s) => void s.write(ANSWER), open() {} } }).port
}

/** One request; whether the handshake resumed `session`, and the session to resume next. */
function visit(port: number, version: Version, session?: Buffer): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let next: Buffer | undefined
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'resume.test', rejectUnauthorized: false, minVersion: version, maxVersion: version, ...(session ? { session } : {}) })
    s.on('session', (b: Buffer) => (next = b))
    s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: resume.test\r\n\r\n'))
    s.once('data', () => {
      const reused = s.isSessionReused()
      // TLS 1.3 tickets arrive after the handshake: wait a moment for them.
      setTimeout(() => {
        s.destroy()
        resolve({ reused, session: next })
      }, 50)
    })
    s.once('error', reject)
  })
}

async function crossResume(a: number, b: number, version: Version): Promise<string> {
  const first = await visit(a, version)
  const sameServer = await visit(a, version, first.session)
  const other = await visit(b, version, first.session)
  return `same server ${sameServer.reused ? 'resumes' : 'full handshake'}, other server ${other.reused ? 'RESUMES' : 'full handshake'}`
}

const pem = { cert: cert.certPem, key: cert.keyPem }
const keys = Buffer.alloc(48, 7)
const shared = createSecureContext(pem) as unknown as { context: unknown }
for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  console.log(`${version}, two contexts from the same options:           ${await crossResume(listen(pem), listen(pem), version)}`)
  console.log(`${version}, the same ticketKeys option on both:           ${await crossResume(listen({ ...pem, ticketKeys: keys }), listen({ ...pem, ticketKeys: keys }), version)}`)
  const twoContexts = [createSecureContext(pem), createSecureContext(pem)] as unknown as { context: unknown }[]
  console.log(`${version}, two createSecureContext(), same options:      ${await crossResume(listen({ secureContext: twoContexts[0]!.context }), listen({ secureContext: twoContexts[1]!.context }), version)}`)
  console.log(`${version}, ONE SecureContext on both listeners (a thread): ${await crossResume(listen({ secureContext: shared.context }), listen({ secureContext: shared.context }), version)}`)
}

const server = tls.createServer(pem)
for (const call of ['setTicketKeys', 'getTicketKeys'] as const) {
  try {
    if (call === 'setTicketKeys') server.setTicketKeys(keys)
    else server.getTicketKeys()
    console.log(`tls.Server.${call}: works`)
  } catch (err) {
    console.log(`tls.Server.${call}: ${err instanceof Error ? err.message : String(err)}`)
  }
}
let sessionEvents = 0
server.on('newSession', (_id: Buffer, _data: Buffer, done: () => void) => {
  sessionEvents++
  done()
})
server.on('secureConnection', (s) => s.end())
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
await new Promise<void>((resolve) => {
  const s = tls.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, rejectUnauthorized: false, maxVersion: 'TLSv1.2' })
  s.on('data', () => {})
  s.on('close', () => resolve())
  s.on('error', () => resolve())
})
console.log(`tls.Server 'newSession' (an external session cache): ${sessionEvents > 0 ? 'emitted' : 'never emitted'}`)
server.close()

try {
  structuredClone(shared.context)
  console.log('a native SecureContext can be cloned (posted to a worker)')
} catch (err) {
  console.log(`posting a native SecureContext to a worker: ${err instanceof Error ? err.name : String(err)}`)
}
process.exit(0)
