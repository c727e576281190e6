/**
 * `extAuth` (HTTP): every request is first sent to an authorization service (a Service of the
 * snapshot's pools) as a bodiless request with the same method, the path prefixed by `path`,
 * Authorization and `headersToExtAuth` from the client, and X-Forwarded-Host/-Uri/-Method/-For.
 *  - 2xx: the request goes on, with the `headersToBackend` of the answer set on it.
 *  - any other answer (401, 403, a 302 to a login page): sent to the client as it came (status,
 *    headers but framing, body up to 64 KiB); the backend sees nothing.
 *  - unreachable, timeout, 5xx: 503, or the request goes on with `failOpen`.
 * Always asynchronous, but it reads only the head (method, path, query, host, a few fields, the
 * client IP) and sets upstream fields: head-only, so the front's direct path awaits the check and
 * forwards the request itself.
 */
import type { LocalReply, PolicyRequest, PolicyRuntime, Verdict } from '../runtime.ts'

const UNAVAILABLE: LocalReply = { status: 503, body: 'authorization service unavailable\n' }
const MAX_BODY = 64 * 1024
const NOT_RELAYED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'date', 'server', 'content-encoding'])

export const extAuthRuntime: PolicyRuntime<'extAuth'> = {
  name: 'extAuth',
  phase: 'authn',
  order: 50,
  compile(ir, ctx) {
    const spec = ir.spec
    const pool = ctx.pools.get(spec.pool)
    const forwarded = ['authorization', ...spec.headersToExtAuth.map((h) => h.toLowerCase())]
    const toBackend = spec.headersToBackend.map((h) => h.toLowerCase())
    const failed = (): Verdict => (spec.failOpen ? undefined : UNAVAILABLE)
    const prefix = spec.path === '/' ? '' : spec.path.replace(/\/+$/, '')
    return {
      headOnly: true,
      async onRequest(req: PolicyRequest): Promise<Verdict> {
        const member = pool?.pick({ clientIp: req.clientIp, headers: { get: (n: string) => req.header(n) }, now: Date.now() })
        if (!member) return failed()
        const headers = new Headers()
        for (const name of forwarded) {
          const v = req.header(name)
          if (v !== null) headers.set(name, v)
        }
        headers.set('x-forwarded-host', req.host)
        headers.set('x-forwarded-uri', req.path + req.query)
        headers.set('x-forwarded-method', req.method)
        headers.set('x-forwarded-for', req.clientIp)
        let res: Response
        try {
          res = await fetch(member.origin + prefix + req.path + req.query, {
            method: req.method === 'GET' || req.method === 'HEAD' ? req.method : 'POST',
            headers,
            redirect: 'manual',
            decompress: false,
            signal: AbortSignal.timeout(spec.timeoutMs),
          } as RequestInit)
        } catch {
          return failed()
        }
        if (res.status >= 200 && res.status < 300) {
          await res.body?.cancel()
          for (const name of toBackend) {
            const v = res.headers.get(name)
            if (v !== null) req.setUpstreamHeader(name, v)
          }
          return undefined
        }
        if (res.status >= 500) {
          await res.body?.cancel()
          return failed()
        }
        const body = await readBounded(res)
        const out: [string, string][] = []
        res.headers.forEach((v, k) => {
          if (!NOT_RELAYED.has(k)) out.push([k, v])
        })
        return { status: res.status, headers: out, body }
      },
    }
  },
}

async function readBounded(res: Response): Promise<string> {
  const text = await res.text().catch(() => '')
  return text.length > MAX_BODY ? text.slice(0, MAX_BODY) : text
}
