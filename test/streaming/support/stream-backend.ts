/**
 * An HTTP backend for streaming tests (real sockets, Bun.serve, no idle timeout of its own).
 *
 *   /sse                   text/event-stream: "first" at once, "second" only after release()
 *   /tick?every=ms&count=n one chunk every `every` ms, n chunks, then end
 *   /silent                one chunk, then nothing (until the reader goes away)
 *   /download?bytes=n      n bytes in 64 KiB chunks, produced only as fast as they are read
 *   /upload                reads the body as a stream; answers {"bytes": n, "ok": pattern intact}
 */
import type { Server } from 'bun'

const CHUNK = 64 * 1024

/** Byte i of every generated body is i mod 251. */
export function patternByte(index: number): number {
  return index % 251
}

export function patternChunk(offset: number, size: number): Uint8Array {
  const chunk = new Uint8Array(size)
  for (let i = 0; i < size; i++) chunk[i] = patternByte(offset + i)
  return chunk
}

export interface StreamBackend {
  readonly port: number
  /** Lets /sse send its second event; true once it was sent. */
  release(): void
  readonly secondEventSent: () => boolean
  /** Resolves when a /silent or /tick stream was cancelled by its reader. */
  readonly cancelled: string[]
  stop(): Promise<void>
}

export function startStreamBackend(): StreamBackend {
  const encoder = new TextEncoder()
  let releaseSse: () => void = () => {}
  let released = new Promise<void>((resolve) => (releaseSse = resolve))
  let second = false
  const cancelled: string[] = []

  const server: Server<undefined> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url)
      switch (url.pathname) {
        case '/sse':
          second = false
          released = new Promise<void>((resolve) => (releaseSse = resolve))
          return new Response(
            new ReadableStream({
              async start(controller) {
                controller.enqueue(encoder.encode('data: first\n\n'))
                await released
                second = true
                controller.enqueue(encoder.encode('data: second\n\n'))
                controller.close()
              },
            }),
            { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } },
          )
        case '/tick': {
          const every = Number(url.searchParams.get('every') ?? 100)
          let left = Number(url.searchParams.get('count') ?? 10)
          return new Response(
            new ReadableStream({
              async pull(controller) {
                controller.enqueue(encoder.encode(`tick ${left}\n`))
                if (--left === 0) return controller.close()
                await Bun.sleep(every)
              },
              cancel() {
                cancelled.push(url.pathname)
              },
            }),
            { headers: { 'content-type': 'text/plain' } },
          )
        }
        case '/silent':
          return new Response(
            new ReadableStream({
              start(controller) {
                controller.enqueue(encoder.encode('hello\n'))
              },
              cancel() {
                cancelled.push(url.pathname)
              },
            }),
            { headers: { 'content-type': 'text/plain' } },
          )
        case '/download': {
          const total = Number(url.searchParams.get('bytes') ?? 0)
          let sent = 0
          return new Response(
            new ReadableStream({
              pull(controller) {
                const size = Math.min(CHUNK, total - sent)
                controller.enqueue(patternChunk(sent, size))
                sent += size
                if (sent >= total) controller.close()
              },
            }),
            { headers: { 'content-type': 'application/octet-stream' } },
          )
        }
        case '/upload': {
          let bytes = 0
          let ok = true
          for await (const chunk of req.body ?? []) {
            const c = chunk as Uint8Array
            if (c.length > 0 && (c[0] !== patternByte(bytes) || c[c.length - 1] !== patternByte(bytes + c.length - 1))) ok = false
            bytes += c.length
          }
          return Response.json({ bytes, ok })
        }
      }
      return new Response('not found', { status: 404 })
    },
  })

  return {
    port: server.port!,
    release: () => releaseSse(),
    secondEventSent: () => second,
    cancelled,
    stop: () => server.stop(true),
  }
}

/** A request body of `total` pattern bytes, produced as it is read. */
export function patternBody(total: number, chunkSize = CHUNK, delayMs = 0): ReadableStream<Uint8Array> {
  let sent = 0
  return new ReadableStream({
    async pull(controller) {
      if (delayMs > 0) await Bun.sleep(delayMs)
      const size = Math.min(chunkSize, total - sent)
      controller.enqueue(patternChunk(sent, size))
      sent += size
      if (sent >= total) controller.close()
    },
  })
}
