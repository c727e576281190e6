import type { HttpFilter } from '../../../ir/types.ts'
import type { CompiledFilters } from './types.ts'
import type { RequestState } from '../context.ts'

type CorsConfig = Extract<HttpFilter, { type: 'CORS' }>

/**
 * Gateway API CORS filter. Preflights (OPTIONS + Origin + Access-Control-Request-Method) are
 * answered here and never reach the backend; other requests get the CORS response headers
 * when their Origin is allowed. Allowed origins are echoed (valid with and without credentials);
 * "*" methods/headers echo what the preflight asked for, because browsers do not accept
 * wildcards on credentialed requests.
 */
export function cors(config: CorsConfig): CompiledFilters {
  const originAllowed = originMatcher(config.allowOrigins)
  const anyMethod = config.allowMethods.includes('*')
  const anyHeader = config.allowHeaders.includes('*')
  const methods = config.allowMethods.join(', ')
  const allowHeaders = config.allowHeaders.join(', ')
  const exposeHeaders = config.exposeHeaders.join(', ')
  const maxAge = config.maxAgeSeconds === undefined ? undefined : String(config.maxAgeSeconds)

  const addCommon = (headers: Headers, origin: string) => {
    headers.set('access-control-allow-origin', origin)
    if (config.allowCredentials) headers.set('access-control-allow-credentials', 'true')
    if (exposeHeaders) headers.set('access-control-expose-headers', exposeHeaders)
    const vary = headers.get('vary')
    if (!vary) headers.set('vary', 'Origin')
    else if (!/(^|,)\s*origin\s*(,|$)/i.test(vary)) headers.set('vary', `${vary}, Origin`)
  }

  return {
    request: [
      (state: RequestState) => {
        if (state.method !== 'OPTIONS') return undefined
        const origin = state.headers.get('origin')
        const requestedMethod = state.headers.get('access-control-request-method')
        if (!origin || !requestedMethod) return undefined
        const headers = new Headers()
        if (originAllowed(origin)) {
          addCommon(headers, origin)
          headers.set('access-control-allow-methods', anyMethod ? requestedMethod : methods)
          const requestedHeaders = state.headers.get('access-control-request-headers')
          const allowed = anyHeader ? requestedHeaders : allowHeaders
          if (allowed) headers.set('access-control-allow-headers', allowed)
          if (maxAge !== undefined) headers.set('access-control-max-age', maxAge)
        }
        headers.set('content-length', '0')
        return { status: 200, headers: [...headers] }
      },
    ],
    response: [
      (state, headers) => {
        const origin = state.headers.get('origin')
        if (origin && originAllowed(origin)) addCommon(headers, origin)
      },
    ],
  }
}

/** "*" allows any origin; "https://*.bar.com" allows any number of labels in place of "*". */
function originMatcher(patterns: readonly string[]): (origin: string) => boolean {
  if (patterns.includes('*')) return () => true
  const exact = new Set<string>()
  const wildcards: RegExp[] = []
  for (const p of patterns) {
    const lower = p.toLowerCase()
    if (!lower.includes('*')) exact.add(lower)
    else wildcards.push(new RegExp(`^${lower.split('*').map(escapeRegex).join('.+')}$`))
  }
  return (origin) => {
    const lower = origin.toLowerCase()
    return exact.has(lower) || wildcards.some((re) => re.test(lower))
  }
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
