/**
 * A tiny echo service for the demo: answers every request with JSON describing what it got,
 * so the effect of routing, weights and header filters is visible with curl.
 */
export function startEcho(name: string, port: number) {
  return Bun.serve({
    port,
    hostname: '127.0.0.1',
    fetch(req) {
      const url = new URL(req.url)
      return Response.json({ service: name, method: req.method, path: url.pathname + url.search, headers: Object.fromEntries(req.headers) })
    },
  })
}
