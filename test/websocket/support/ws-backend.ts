/**
 * A WebSocket backend for gateway tests (real sockets, Bun.serve).
 *
 *   /echo          echoes text and binary frames; answers "ping-me" with a ping ("from-backend");
 *                  "close:<code>:<reason>" closes with that code. Picks the LAST offered
 *                  subprotocol, so a test can tell the backend chose it.
 *   /refuse/<code> answers <code> instead of 101
 *   /flood?bytes=N sends N bytes as 64 KiB binary frames numbered by a running byte counter,
 *                  respecting its own backpressure (waits for drain), then closes with 1000
 *   /sink?pauseMs=N counts received bytes; "count?" is answered with the total so far. With
 *                  pauseMs it does not read for N ms after opening (a slow backend)
 */
import type { Server, ServerWebSocket } from 'bun'

export interface Handshake {
  readonly path: string
  readonly headers: Record<string, string>
}

export interface BackendSession {
  readonly path: string
  readonly pings: string[]
  readonly pongs: string[]
  received: number
  closed?: { code: number; reason: string }
}

export interface WsBackend {
  readonly port: number
  readonly handshakes: Handshake[]
  readonly sessions: BackendSession[]
  /** Resolves with the next session's close. */
  nextClose(): Promise<{ code: number; reason: string }>
  stop(): Promise<void>
}

interface Data {
  readonly session: BackendSession
  flood?: { remaining: number; sent: number }
}

const FRAME = 64 * 1024

/** Byte i of a flood has value i mod 251 (prime, so frame boundaries do not line up with it). */
export function floodByte(index: number): number {
  return index % 251
}

export function startWsBackend(): WsBackend {
  const handshakes: Handshake[] = []
  const sessions: BackendSession[] = []
  let closeWaiters: ((c: { code: number; reason: string }) => void)[] = []

  const pump = (ws: ServerWebSocket<Data>) => {
    const flood = ws.data.flood!
    while (flood.remaining > 0) {
      const size = Math.min(FRAME, flood.remaining)
      const frame = new Uint8Array(size)
      for (let i = 0; i < size; i++) frame[i] = floodByte(flood.sent + i)
      const status = ws.send(frame)
      if (status === 0) throw new Error('backend test server dropped a frame')
      flood.remaining -= size
      flood.sent += size
      if (status === -1) return // wait for drain
    }
    ws.close(1000, 'flood done')
  }

  const server: Server<Data> = Bun.serve<Data>({
    port: 0,
    hostname: '127.0.0.1',
    fetch(req, srv) {
      const url = new URL(req.url)
      const headers: Record<string, string> = {}
      req.headers.forEach((v, k) => (headers[k] = v))
      handshakes.push({ path: url.pathname + url.search, headers })
      const refuse = /^\/refuse\/(\d{3})$/.exec(url.pathname)
      if (refuse) return new Response('not here', { status: Number(refuse[1]) })
      const offered = (req.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim()).filter(Boolean)
      const session: BackendSession = { path: url.pathname + url.search, pings: [], pongs: [], received: 0 }
      const data: Data = { session }
      if (url.pathname === '/flood') data.flood = { remaining: Number(url.searchParams.get('bytes') ?? 0), sent: 0 }
      const upgraded = srv.upgrade(req, {
        data,
        headers: offered.length ? { 'Sec-WebSocket-Protocol': offered[offered.length - 1]! } : {},
      })
      return upgraded ? undefined : new Response('upgrade required', { status: 426 })
    },
    websocket: {
      maxPayloadLength: 32 * 1024 * 1024,
      open(ws) {
        sessions.push(ws.data.session)
        const pauseMs = Number(new URL(`http://x${ws.data.session.path}`).searchParams.get('pauseMs') ?? 0)
        if (pauseMs > 0) {
          ws.pause()
          setTimeout(() => ws.resume(), pauseMs)
        }
        if (ws.data.flood) pump(ws)
      },
      drain(ws) {
        if (ws.data.flood && ws.data.flood.remaining > 0) pump(ws)
      },
      message(ws, message) {
        const session = ws.data.session
        session.received += typeof message === 'string' ? Buffer.byteLength(message) : message.length
        if (session.path.startsWith('/sink')) {
          if (message === 'count?') ws.send(String(session.received - 'count?'.length))
          return
        }
        if (message === 'ping-me') {
          ws.ping('from-backend')
          return
        }
        if (typeof message === 'string' && message.startsWith('close:')) {
          const [, code, reason] = message.split(':')
          ws.close(Number(code), reason)
          return
        }
        ws.send(message)
      },
      ping(ws, data) {
        ws.data.session.pings.push(data.toString())
      },
      pong(ws, data) {
        ws.data.session.pongs.push(data.toString())
      },
      close(ws, code, reason) {
        ws.data.session.closed = { code, reason }
        const waiters = closeWaiters
        closeWaiters = []
        for (const w of waiters) w({ code, reason })
      },
    },
  })

  return {
    port: server.port!,
    handshakes,
    sessions,
    nextClose: () => new Promise((resolve) => closeWaiters.push(resolve)),
    stop: () => server.stop(true),
  }
}
