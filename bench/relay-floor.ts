#!/usr/bin/env bun
/**
 * The floor of any proxy on this runtime, for bench/http.ts: a Bun.listen server that opens one
 * upstream connection per client connection and copies bytes both ways. No HTTP parsing, no
 * routing, no pooling: what is left is Bun's own per-event cost (socket callbacks, Buffers,
 * writes) plus the kernel's. Portico's CPU per request minus this is what its HTTP work costs.
 *
 *   bun bench/relay-floor.ts <listen port> <upstream port>
 */
const [listenPort, upstreamPort] = process.argv.slice(2).map(Number)

interface Client {
  upstream: Bun.Socket<Bun.Socket<Client>> | undefined
  /** Bytes the client sent before its upstream connection opened. */
  early: Uint8Array[]
}

Bun.listen<Client>({
  hostname: '127.0.0.1',
  port: listenPort!,
  socket: {
    open(client) {
      client.data = { upstream: undefined, early: [] }
      void Bun.connect<Bun.Socket<Client>>({
        hostname: '127.0.0.1',
        port: upstreamPort!,
        data: client,
        socket: {
          open(upstream) {
            client.data.upstream = upstream
            for (const bytes of client.data.early) upstream.write(bytes)
            client.data.early = []
          },
          data(upstream, bytes) {
            upstream.data.write(bytes)
          },
          close(upstream) {
            upstream.data.end()
          },
          error() {},
        },
      }).catch(() => client.end())
    },
    data(client, bytes) {
      if (client.data.upstream) client.data.upstream.write(bytes)
      else client.data.early.push(bytes)
    },
    close(client) {
      client.data.upstream?.end()
    },
    error() {},
  },
})
