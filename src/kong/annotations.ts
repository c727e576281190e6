/**
 * The `konghq.com/*` annotations on HTTPRoutes and Services (KIC 3.x), besides strip-path
 * (translate/compat.ts) and plugins (index.ts):
 *
 *  - HTTPRoute `methods: "GET,POST"` and `headers.<name>: "a,b"`: the route matches only those
 *    methods and header values (Kong answers others 404: no route matched);
 *  - HTTPRoute `protocols: "https"` (with `https-redirect-status-code`, default 426) and
 *    `force-ssl-redirect: "true"`: plain-HTTP requests are refused or redirected (requireHttps);
 *  - HTTPRoute `preserve-host: "false"`: the upstream Host is the Service's name (KIC's default
 *    for HTTPRoutes is true, which is also Portico's);
 *  - Service `host-header`: the upstream Host; Service `path`: prefixed to the upstream path;
 *  - Service `read-timeout` (ms): how long the backend may take to answer (the rule's backend
 *    request timeout, unless the HTTPRoute sets one); Service `retries`: how many times a request
 *    whose connection failed or was reset is tried again (Kong retries connection failures and
 *    timeouts, never an answered status; the HTTPRoute's own `retry` wins).
 *
 * Other konghq.com annotations are ignored and said so in the route's Accepted message;
 * tags and KIC's own bookkeeping annotations are ignored silently.
 */
import type { HttpFilter, HttpMatch, StringMatch } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'

const PREFIX = 'konghq.com/'
/** Read elsewhere, or KIC-only bookkeeping: never warned about. */
const SILENT = new Set(['strip-path', 'plugins', 'tags', 'gatewayclass-unmanaged', 'override', 'ingress.class'])
/** Read here (route / Service). */
const ROUTE_READ = new Set(['methods', 'protocols', 'https-redirect-status-code', 'force-ssl-redirect', 'preserve-host'])
const SERVICE_READ = new Set(['host-header', 'path', 'read-timeout', 'retries'])

export interface RouteAnnotations {
  readonly methods?: readonly string[]
  readonly headers: readonly StringMatch[]
  readonly httpsStatus?: 426 | 301 | 302 | 307 | 308
  readonly preserveHost: boolean
  /** Annotations Portico does not read (named in the route's status). */
  readonly ignored: readonly string[]
  /** Malformed values: the rules answer 500. */
  readonly problems: readonly string[]
}

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export function routeAnnotations(route: K8sObject): RouteAnnotations | undefined {
  const a = route.metadata.annotations
  if (!a) return undefined
  let any = false
  const headers: StringMatch[] = []
  const ignored: string[] = []
  const problems: string[] = []
  let methods: string[] | undefined
  let httpsOnly = false
  let httpsStatus: RouteAnnotations['httpsStatus']
  let preserveHost = true
  for (const [key, raw] of Object.entries(a)) {
    if (!key.startsWith(PREFIX) || typeof raw !== 'string') continue
    const name = key.slice(PREFIX.length)
    if (SILENT.has(name)) continue
    any = true
    if (name.startsWith('headers.')) {
      const values = list(raw)
      if (!values.length) problems.push(`annotation ${key} needs at least one value`)
      else headers.push({ name: name.slice('headers.'.length).toLowerCase(), type: 'RegularExpression', value: values.length === 1 ? escape(values[0]!) : `(${values.map(escape).join('|')})` })
    } else if (name === 'methods') {
      methods = list(raw).map((m) => m.toUpperCase())
      if (!methods.length || methods.some((m) => !/^[A-Z]+$/.test(m))) problems.push(`annotation ${key} must list HTTP methods`)
    } else if (name === 'protocols') {
      const ps = list(raw).map((p) => p.toLowerCase())
      if (ps.some((p) => p !== 'http' && p !== 'https')) problems.push(`annotation ${key}: only http and https are supported on HTTPRoutes`)
      httpsOnly = ps.length > 0 && !ps.includes('http')
    } else if (name === 'https-redirect-status-code') {
      const n = Number(raw)
      if (n !== 426 && n !== 301 && n !== 302 && n !== 307 && n !== 308) problems.push(`annotation ${key} must be 426, 301, 302, 307 or 308`)
      else httpsStatus = n
    } else if (name === 'force-ssl-redirect') {
      if (raw.toLowerCase() === 'true') httpsOnly = true
    } else if (name === 'preserve-host') preserveHost = raw.toLowerCase() !== 'false'
    else if (!ROUTE_READ.has(name)) ignored.push(key)
  }
  if (!any) return undefined
  const status = httpsOnly ? (httpsStatus ?? (a[`${PREFIX}force-ssl-redirect`]?.toLowerCase() === 'true' ? 302 : 426)) : undefined
  return { ...(methods ? { methods } : {}), headers, ...(status ? { httpsStatus: status } : {}), preserveHost, ignored, problems }
}

/** The rule's matches narrowed by the methods and headers annotations (a match per method). */
export function narrowMatches(matches: readonly (HttpMatch | undefined)[], a: RouteAnnotations): (HttpMatch | undefined)[] {
  const out: (HttpMatch | undefined)[] = []
  for (const m of matches) {
    if (!m) {
      out.push(m)
      continue
    }
    const names = new Set(m.headers.map((h) => h.name))
    const withHeaders: HttpMatch = a.headers.length ? { ...m, headers: [...m.headers, ...a.headers.filter((h) => !names.has(h.name))] } : m
    if (!a.methods) out.push(withHeaders)
    else if (m.method) {
      if (a.methods.includes(m.method)) out.push(withHeaders)
    } else for (const method of a.methods) out.push({ ...withHeaders, method })
  }
  return out
}

export interface ServiceAnnotations {
  readonly hostHeader?: string
  readonly path?: string
  /** `read-timeout`, in ms. */
  readonly readTimeoutMs?: number
  /** `retries`: attempts after the first on connection failures. */
  readonly retries?: number
  readonly ignored: readonly string[]
  /** Malformed values: the rules that use the Service answer 500. */
  readonly problems: readonly string[]
}

export function serviceAnnotations(svc: K8sObject | undefined): ServiceAnnotations | undefined {
  const a = svc?.metadata.annotations
  if (!a) return undefined
  let any = false
  const out: { -readonly [K in keyof ServiceAnnotations]: ServiceAnnotations[K] } = { ignored: [], problems: [] }
  const ignored: string[] = []
  const problems: string[] = []
  for (const [key, raw] of Object.entries(a)) {
    if (!key.startsWith(PREFIX) || typeof raw !== 'string') continue
    const name = key.slice(PREFIX.length)
    if (SILENT.has(name)) continue
    any = true
    if (name === 'host-header') out.hostHeader = raw
    else if (name === 'path') {
      if (raw.startsWith('/')) out.path = raw
    } else if (name === 'read-timeout' || name === 'retries') {
      const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN
      // Kong's schema: timeouts 1..2^31-2 ms, retries 0..32767
      if (name === 'read-timeout' && n >= 1 && n <= 2147483646) out.readTimeoutMs = n
      else if (name === 'retries' && n >= 0 && n <= 32767) out.retries = n
      else problems.push(`${key} "${raw}" on Service ${svc!.metadata.name} is not a valid ${name === 'retries' ? 'retry count (0-32767)' : 'timeout in milliseconds'}`)
    } else if (!SERVICE_READ.has(name)) ignored.push(`${key} (Service ${svc!.metadata.name})`)
  }
  return any ? { ...out, ignored, problems } : undefined
}

/** What a rule's Service annotations and preserve-host ask of the upstream request. */
export interface UpstreamRewrite {
  readonly hostname?: string
  /** Service `konghq.com/path`: prefixed to the path going upstream. */
  readonly servicePath?: string
}

/**
 * The rule's filters with the Kong rewrite merged into its URLRewrite (one per rule): a hostname
 * unless the route sets one; the Service path in front of what the match leaves (after
 * strip-path) on PathPrefix matches.
 */
export function withUpstreamRewrite(filters: readonly HttpFilter[], match: HttpMatch, rewrite: UpstreamRewrite | undefined, stripped: boolean): readonly HttpFilter[] {
  if (!rewrite || (!rewrite.hostname && !rewrite.servicePath)) return filters
  const i = filters.findIndex((f) => f.type === 'URLRewrite')
  const current = (i >= 0 ? filters[i] : { type: 'URLRewrite' }) as Extract<HttpFilter, { type: 'URLRewrite' }>
  let path = current.path
  if (rewrite.servicePath && match.path.type === 'PathPrefix') {
    const base = rewrite.servicePath.replace(/\/+$/, '')
    if (!path) path = { type: 'ReplacePrefixMatch', value: `${base}${match.path.value}` || '/' }
    else if (path.type === 'ReplacePrefixMatch' && stripped) path = { type: 'ReplacePrefixMatch', value: `${base}${path.value === '/' ? '' : path.value}` || '/' }
  }
  const next: HttpFilter = { type: 'URLRewrite', ...(current.hostname ?? rewrite.hostname ? { hostname: current.hostname ?? rewrite.hostname } : {}), ...(path ? { path } : {}) }
  return i >= 0 ? filters.map((f, j) => (j === i ? next : f)) : [...filters, next]
}
