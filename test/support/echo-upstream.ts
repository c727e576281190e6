/**
 * A real-socket echo backend for data plane tests. Records every request (method, path with
 * query, headers as received, body, client source port = connection identity) and answers JSON.
 *
 *   /status/<code>         answer with that status
 *   ?delay=<ms>            wait before answering
 *   /sse                   text/event-stream: one event now, one more after 2 s
 *   /chunked-upload        read the body as a stream; records when the first chunk arrived
 */
import type { Server } from 'bun'

export interface EchoRequest {
  readonly name: string
  readonly method: string
  /** Path with query, as received. */
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
  /** Client source port: distinct values = distinct TCP connections. */
  readonly remotePort: number
  readonly receivedAt: number
  firstChunkAt?: number
}

export interface EchoUpstream {
  readonly name: string
  readonly port: number
  readonly requests: EchoRequest[]
  /** Source ports seen: one per upstream TCP connection. */
  readonly connections: Set<number>
  /** Resolves when the next request has arrived (before its body is read). */
  nextRequest(): Promise<EchoRequest>
  stop(): Promise<void>
}

export function startEcho(name = 'echo'): EchoUpstream {
  const requests: EchoRequest[] = []
  const connections = new Set<number>()
  let waiters: ((r: EchoRequest) => void)[] = []

  const server: Server<undefined> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 30,
    async fetch(req, srv) {
      const url = new URL(req.url)
      const target = url.pathname + url.search
      const remotePort = srv.requestIP(req)?.port ?? 0
      connections.add(remotePort)
      const headers: Record<string, string> = {}
      req.headers.forEach((value, key) => {
        headers[key] = value
      })
      const record: EchoRequest = { name, method: req.method, path: target, headers, body: '', remotePort, receivedAt: Date.now() }
      requests.push(record)
      const current = waiters
      waiters = []
      for (const w of current) w(record)

      if (url.pathname === '/chunked-upload' && req.body) {
        let body = ''
        const decoder = new TextDecoder()
        for await (const chunk of req.body) {
          record.firstChunkAt ??= Date.now()
          body += decoder.decode(chunk, { stream: true })
        }
        ;(record as { body: string }).body = body
        return Response.json({ name, body, firstChunkAt: record.firstChunkAt })
      }
      ;(record as { body: string }).body = req.body ? await req.text() : ''

      const delay = Number(url.searchParams.get('delay') ?? 0)
      if (delay > 0) await Bun.sleep(delay)
      const status = /^\/status\/(\d{3})$/.exec(url.pathname)
      if (status) return new Response(`status ${status[1]}`, { status: Number(status[1]), headers: { 'x-echo-name': name } })
      if (url.pathname === '/sse') {
        const stream = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode('data: first\n\n'))
            await Bun.sleep(2000)
            controller.enqueue(new TextEncoder().encode('data: second\n\n'))
            controller.close()
          },
        })
        return new Response(stream, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
      }
      return Response.json({ name, method: req.method, path: target, headers, body: record.body }, { headers: { 'x-echo-name': name } })
    },
  })

  return {
    name,
    port: server.port!,
    requests,
    connections,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    stop: () => server.stop(true),
  }
}
