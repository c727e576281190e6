/**
 * `cors` (spec.ts). A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered 200 here, before any authentication runs; other responses get the CORS headers when
 * the Origin is allowed. Any-origin without credentials answers the literal "*" (Kong does);
 * otherwise the allowed Origin is echoed with `Vary: Origin`.
 */
import type { PolicyRequest, PolicyRuntime } from '../runtime.ts'

export const corsPolicyRuntime: PolicyRuntime<'cors'> = {
  name: 'cors',
  phase: 'client',
  order: 50,
  compile(ir) {
    const spec = ir.spec
    const anyOrigin = spec.origins.length === 0 || spec.origins.includes('*')
    const allowed = anyOrigin ? () => true : originMatcher(spec.origins)
    const methods = spec.methods.join(',')
    const headers = spec.headers.join(',')
    const exposed = spec.exposedHeaders.join(',')
    const allowOrigin = (origin: string) => (anyOrigin && !spec.credentials ? '*' : origin)
    const common = (origin: string): [string, string][] => {
      const out: [string, string][] = [['access-control-allow-origin', allowOrigin(origin)]]
      if (spec.credentials) out.push(['access-control-allow-credentials', 'true'])
      if (!(anyOrigin && !spec.credentials)) out.push(['vary', 'Origin'])
      return out
    }
    return {
      headOnly: false,
      onRequest(req: PolicyRequest) {
        if (req.method !== 'OPTIONS' || spec.preflightContinue) return undefined
        const origin = req.header('origin')
        const method = req.header('access-control-request-method')
        if (origin === null || method === null) return undefined
        const out: [string, string][] = []
        if (allowed(origin)) {
          out.push(...common(origin), ['access-control-allow-methods', methods])
          const h = headers || req.header('access-control-request-headers')
          if (h) out.push(['access-control-allow-headers', h])
          if (spec.maxAgeSeconds !== undefined) out.push(['access-control-max-age', String(spec.maxAgeSeconds)])
        }
        out.push(['content-length', '0'])
        return { status: 200, headers: out }
      },
      onResponseHead(res, req) {
        const origin = req.header('origin')
        if (origin === null || !allowed(origin)) return
        for (const [name, value] of common(origin)) {
          if (name === 'vary') {
            const vary = res.headers.get('vary')
            if (!vary) res.headers.set('vary', value)
            else if (!/(^|,)\s*origin\s*(,|$)/i.test(vary)) res.headers.set('vary', `${vary}, Origin`)
          } else res.headers.set(name, value)
        }
        if (exposed) res.headers.set('access-control-expose-headers', exposed)
      },
    }
  },
}

function originMatcher(patterns: readonly string[]): (origin: string) => boolean {
  const exact = new Set<string>()
  const wildcards: RegExp[] = []
  for (const p of patterns) {
    const lower = p.toLowerCase()
    if (!lower.includes('*')) exact.add(lower)
    else wildcards.push(new RegExp(`^${lower.split('*').map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+')}$`))
  }
  return (origin) => {
    const lower = origin.toLowerCase()
    return exact.has(lower) || wildcards.some((re) => re.test(lower))
  }
}
