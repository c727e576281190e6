/**
 * Kong plugin configurations → policy features (PolicyIr specs) of Portico's runtimes: a second
 * configuration surface onto the same runtimes (src/policy/*), with Kong's schema defaults.
 * Fields are checked as Kong's schemas would: an unknown field, or a known one asking for
 * something Portico cannot do yet (key_in_body, body transformations, the cluster policy), is a
 * problem, and the routes using the plugin answer 500 rather than run without it.
 */
import type { PolicyName, PolicySpecs } from '../policy/kind.ts'
import type { ConsumerIdentity } from '../policy/consumer/identity.ts'
import type { RateLimitRule, RateLimitUnit, ClientSelector } from '../policy/rate-limit/spec.ts'
import type { TransformSet } from '../policy/transformer/spec.ts'
import { DEFAULT_GLOBAL_TIMEOUT_MS } from '../policy/rate-limit/spec.ts'
import { isIP } from 'node:net'
import { list, obj, str, type Json } from '../translate/util.ts'
import type { Consumer } from './consumers.ts'

export interface PluginFeature<K extends PolicyName = PolicyName> {
  readonly name: K
  readonly spec: PolicySpecs[K]
}

export interface PluginTranslation {
  readonly features: readonly PluginFeature[]
}

export interface PluginEnv {
  /** Accepted consumers (credentials and identities). */
  readonly consumers: readonly Consumer[]
  /** Level the configuration applies at: rate limits count per route rule, or shared otherwise. */
  readonly level: 'route' | 'service' | 'consumer' | 'global'
}

interface PluginDef {
  /** Authentication plugins identify consumers: they cannot be attached to a consumer. */
  readonly auth?: boolean
  /** Config fields Kong's schema knows (others are errors, as in Kong). */
  readonly fields: readonly string[]
  translate(config: Json, env: PluginEnv): PluginTranslation | string
}

const feature = <K extends PolicyName>(name: K, spec: PolicySpecs[K]): PluginFeature => ({ name, spec }) as PluginFeature

const strings = (v: unknown): string[] => list(v).filter((x): x is string => typeof x === 'string')
const boolOr = (v: unknown, d: boolean) => (typeof v === 'boolean' ? v : d)

/** Kong's `anonymous`: a consumer id or username. */
function anonymousOf(config: Json, env: PluginEnv): ConsumerIdentity | string | undefined {
  const ref = str(config.anonymous)
  if (!ref) return undefined
  const c = env.consumers.find((x) => x.identity.id === ref || x.identity.username === ref)
  return c ? { ...c.identity, anonymous: true } : `anonymous consumer ${ref} not found`
}

const keyAuth: PluginDef = {
  auth: true,
  fields: ['key_names', 'hide_credentials', 'anonymous', 'key_in_header', 'key_in_query', 'key_in_body', 'run_on_preflight', 'realm'],
  translate(c, env) {
    if (c.key_in_body === true) return 'key_in_body is not supported yet'
    const names = c.key_names === undefined ? ['apikey'] : strings(c.key_names)
    if (names.length === 0) return 'key_names must list at least one name'
    const anonymous = anonymousOf(c, env)
    if (typeof anonymous === 'string') return anonymous
    const inHeader = boolOr(c.key_in_header, true)
    const inQuery = boolOr(c.key_in_query, true)
    return {
      features: [
        feature('apiKeyAuth', {
          credentials: env.consumers.flatMap((x) => x.keys.map((k) => ({ clientID: x.identity.username ?? x.identity.id, sha256: k.sha256, consumer: k.consumer }))),
          extractFrom: [{ ...(inHeader ? { headers: names.map((n) => n.toLowerCase()) } : {}), ...(inQuery ? { params: names } : {}) }],
          sanitize: boolOr(c.hide_credentials, false),
          errorStyle: 'kong',
          ...(anonymous ? { anonymous } : {}),
          ...(c.run_on_preflight === false ? { skipPreflight: true } : {}),
        }),
      ],
    }
  },
}

const basicAuth: PluginDef = {
  auth: true,
  fields: ['hide_credentials', 'anonymous', 'realm'],
  translate(c, env) {
    const anonymous = anonymousOf(c, env)
    if (typeof anonymous === 'string') return anonymous
    const basics = env.consumers.flatMap((x) => x.basics)
    return {
      features: [
        feature('basicAuth', {
          htpasswd: basics.map((b) => ({ user: b.username, hash: b.hash })),
          consumers: Object.fromEntries(basics.map((b) => [b.username, b.consumer])),
          errorStyle: 'kong',
          ...(anonymous ? { anonymous } : {}),
          ...(c.hide_credentials === true ? { hideCredentials: true } : {}),
        }),
      ],
    }
  },
}

const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384']

const jwt: PluginDef = {
  auth: true,
  fields: ['uri_param_names', 'cookie_names', 'header_names', 'claims_to_verify', 'key_claim_name', 'secret_is_base64', 'anonymous', 'run_on_preflight', 'maximum_expiration', 'realm'],
  translate(c, env) {
    const anonymous = anonymousOf(c, env)
    if (typeof anonymous === 'string') return anonymous
    const claims = strings(c.claims_to_verify)
    if (claims.some((x) => x !== 'exp' && x !== 'nbf')) return 'claims_to_verify may list exp and nbf only'
    const maximum = c.maximum_expiration === undefined ? 0 : c.maximum_expiration
    if (typeof maximum !== 'number' || maximum < 0) return 'maximum_expiration must be a non-negative number'
    const credentials = env.consumers.flatMap((x) => x.jwts).filter((j) => JWT_ALGORITHMS.includes(j.algorithm))
    return {
      features: [
        feature('jwtCredentials', {
          credentials: credentials.map((j) => ({ key: j.key, algorithm: j.algorithm as 'HS256', ...(j.secret ? { secret: j.secret } : {}), ...(j.publicKeyPem ? { publicKeyPem: j.publicKeyPem } : {}), ...(c.secret_is_base64 === true ? { secretIsBase64: true } : {}), consumer: j.consumer })),
          keyClaim: str(c.key_claim_name) ?? 'iss',
          headers: (c.header_names === undefined ? ['authorization'] : strings(c.header_names)).map((h) => h.toLowerCase()),
          params: c.uri_param_names === undefined ? ['jwt'] : strings(c.uri_param_names),
          cookies: strings(c.cookie_names),
          claimsToVerify: claims as ('exp' | 'nbf')[],
          maximumExpiration: maximum,
          ...(anonymous ? { anonymous } : {}),
          ...(c.run_on_preflight === false ? { skipPreflight: true } : {}),
        }),
      ],
    }
  },
}

const acl: PluginDef = {
  fields: ['allow', 'deny', 'hide_groups_header', 'include_consumer_groups', 'always_use_authenticated_groups'],
  translate(c) {
    const allow = strings(c.allow)
    const deny = strings(c.deny)
    if (allow.length && deny.length) return 'allow and deny cannot both be set'
    if (!allow.length && !deny.length) return 'one of allow or deny is required'
    return { features: [feature('acl', { ...(allow.length ? { allow } : {}), ...(deny.length ? { deny } : {}), hideGroupsHeader: boolOr(c.hide_groups_header, false) })] }
  },
}

const PERIODS: readonly [string, RateLimitUnit][] = [
  ['second', 'Second'],
  ['minute', 'Minute'],
  ['hour', 'Hour'],
  ['day', 'Day'],
  ['month', 'Month'],
  ['year', 'Year'],
]

const REDIS_FIELDS = ['redis', 'redis_host', 'redis_port', 'redis_password', 'redis_username', 'redis_ssl', 'redis_ssl_verify', 'redis_server_name', 'redis_timeout', 'redis_database']

const rateLimiting: PluginDef = {
  fields: ['second', 'minute', 'hour', 'day', 'month', 'year', 'limit_by', 'header_name', 'path', 'policy', 'fault_tolerant', 'hide_client_headers', 'error_code', 'error_message', 'sync_rate', ...REDIS_FIELDS],
  translate(c, env) {
    const policy = str(c.policy) ?? 'local'
    if (policy !== 'local' && policy !== 'redis') return `policy ${policy} is not supported (local and redis are)`
    if (c.error_code !== undefined && c.error_code !== 429) return 'error_code other than 429 is not supported yet'
    if (c.error_message !== undefined && c.error_message !== 'API rate limit exceeded') return 'a custom error_message is not supported yet'
    const limitBy = str(c.limit_by) ?? 'consumer'
    let selector: ClientSelector
    switch (limitBy) {
      case 'consumer':
        selector = { identity: 'Consumer' }
        break
      case 'credential':
        selector = { identity: 'Credential' }
        break
      case 'ip':
        selector = { identity: 'ClientIP' }
        break
      case 'header': {
        const h = str(c.header_name)
        if (!h) return 'limit_by header needs header_name'
        selector = { headers: [{ name: h.toLowerCase(), type: 'Distinct', invert: false }] }
        break
      }
      case 'service':
      case 'path':
        // one counter for everything the plugin covers (path: the configured path is the identifier)
        selector = {}
        break
      default:
        return `limit_by ${limitBy} is not supported`
    }
    const rules: RateLimitRule[] = []
    for (const [field, unit] of PERIODS) {
      const v = c[field]
      if (v === undefined || v === null) continue
      if (typeof v !== 'number' || !(v >= 0)) return `${field} must be a non-negative number`
      rules.push({ clientSelectors: Object.keys(selector).length ? [selector] : [], requests: Math.floor(v), unit, cost: 1, shared: env.level !== 'route', shadowMode: false })
    }
    if (rules.length === 0) return 'at least one of second, minute, hour, day, month, year is required'
    const responseHeaders = c.hide_client_headers === true ? 'None' : 'All'
    const spec = policy === 'local'
      ? { local: { rules }, responseHeaders, headerStyle: 'kong' as const }
      : { global: { rules, failClosed: c.fault_tolerant === false, timeoutMs: DEFAULT_GLOBAL_TIMEOUT_MS }, responseHeaders, headerStyle: 'kong' as const }
    return { features: [feature('rateLimit', spec as PolicySpecs['rateLimit'])] }
  },
}

const DEFAULT_CORS_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']

const cors: PluginDef = {
  fields: ['origins', 'methods', 'headers', 'exposed_headers', 'credentials', 'max_age', 'preflight_continue', 'private_network'],
  translate(c) {
    if (c.private_network === true) return 'private_network is not supported yet'
    const maxAge = c.max_age
    if (maxAge !== undefined && maxAge !== null && (typeof maxAge !== 'number' || maxAge < 0)) return 'max_age must be a non-negative number'
    return {
      features: [
        feature('cors', {
          origins: strings(c.origins),
          methods: c.methods === undefined || c.methods === null ? DEFAULT_CORS_METHODS : strings(c.methods).map((m) => m.toUpperCase()),
          headers: strings(c.headers),
          exposedHeaders: strings(c.exposed_headers),
          credentials: boolOr(c.credentials, false),
          ...(typeof maxAge === 'number' ? { maxAgeSeconds: Math.floor(maxAge) } : {}),
          preflightContinue: boolOr(c.preflight_continue, false),
        }),
      ],
    }
  },
}

const ipRestriction: PluginDef = {
  fields: ['allow', 'deny', 'status', 'message'],
  translate(c) {
    const allow = strings(c.allow)
    const deny = strings(c.deny)
    if (!allow.length && !deny.length) return 'one of allow or deny is required'
    for (const a of [...allow, ...deny]) if (!isCidr(a)) return `${a} is not an IP address or CIDR range`
    const status = typeof c.status === 'number' ? c.status : 403
    const message = str(c.message) ?? 'IP address not allowed'
    // deny wins over allow; with an allow list, anything else is denied
    const rules = [
      ...(deny.length ? [{ action: 'Deny' as const, principal: { clientCIDRs: deny } }] : []),
      ...(allow.length ? [{ action: 'Allow' as const, principal: { clientCIDRs: allow } }] : []),
    ]
    return { features: [feature('authorization', { defaultAction: allow.length ? 'Deny' : 'Allow', rules, deny: { status, message, style: 'kong' } })] }
  },
}

function isCidr(v: string): boolean {
  const slash = v.indexOf('/')
  const addr = slash < 0 ? v : v.slice(0, slash)
  const family = isIP(addr)
  if (family === 0) return false
  if (slash < 0) return true
  const bits = Number(v.slice(slash + 1))
  return Number.isInteger(bits) && bits >= 0 && bits <= (family === 4 ? 32 : 128)
}

const SIZE_UNITS: Record<string, number> = { bytes: 1, kilobytes: 1024, megabytes: 1024 * 1024 }

const requestSizeLimiting: PluginDef = {
  fields: ['allowed_payload_size', 'size_unit', 'require_content_length'],
  translate(c) {
    const size = c.allowed_payload_size === undefined ? 128 : c.allowed_payload_size
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) return 'allowed_payload_size must be a non-negative integer'
    const unit = str(c.size_unit) ?? 'megabytes'
    const factor = SIZE_UNITS[unit]
    if (!factor) return `size_unit ${unit} must be bytes, kilobytes or megabytes`
    const maxBytes = size * factor
    return { features: [feature('requestSizeLimit', { maxBytes, requireContentLength: boolOr(c.require_content_length, false) })] }
  },
}

const correlationId: PluginDef = {
  fields: ['header_name', 'generator', 'echo_downstream'],
  translate(c) {
    const generator = str(c.generator) ?? 'uuid#counter'
    if (generator !== 'uuid' && generator !== 'uuid#counter' && generator !== 'tracker') return `generator ${generator} must be uuid, uuid#counter or tracker`
    return { features: [feature('correlationId', { header: (str(c.header_name) ?? 'Kong-Request-ID').toLowerCase(), generator, echoDownstream: boolOr(c.echo_downstream, false) })] }
  },
}

/** "name:value" entries (Kong's transformer syntax); names only for `remove`. */
function pairs(v: unknown, what: string, lower: boolean): (readonly [string, string])[] | string {
  const out: (readonly [string, string])[] = []
  for (const e of strings(v)) {
    const i = e.indexOf(':')
    if (i <= 0) return `${what}: "${e}" must be name:value`
    const value = e.slice(i + 1).trim()
    if (value.includes('$(')) return `${what}: template values ("$(...)") are not supported yet`
    out.push([lower ? e.slice(0, i).trim().toLowerCase() : e.slice(0, i).trim(), value])
  }
  return out
}

function transformSet(c: Json, field: 'headers' | 'querystring', lower: boolean): TransformSet | string {
  const section = (s: string) => obj(c[s])?.[field]
  const remove = strings(section('remove')).map((n) => (lower ? n.toLowerCase() : n))
  const parts: Record<string, (readonly [string, string])[]> = {}
  for (const s of ['rename', 'replace', 'add', 'append']) {
    const p = pairs(section(s), `${s}.${field}`, lower)
    if (typeof p === 'string') return p
    parts[s] = p
  }
  return { remove, rename: parts.rename!, replace: parts.replace!, add: parts.add!, append: parts.append! }
}

/** Sections whose only fields Portico handles are `allowed`; anything else set is unsupported. */
function unsupportedParts(c: Json, allowed: readonly string[]): string | undefined {
  for (const s of ['remove', 'rename', 'replace', 'add', 'append']) {
    const sec = obj(c[s])
    for (const [k, v] of Object.entries(sec ?? {})) if (!allowed.includes(k) && !(Array.isArray(v) && v.length === 0) && v !== null && !(s === 'replace' && k === 'uri')) return `${s}.${k} is not supported yet`
  }
  return undefined
}

const requestTransformer: PluginDef = {
  fields: ['http_method', 'remove', 'rename', 'replace', 'add', 'append'],
  translate(c) {
    if (c.http_method !== undefined && c.http_method !== null) return 'http_method is not supported yet'
    const bad = unsupportedParts(c, ['headers', 'querystring'])
    if (bad) return bad
    const headers = transformSet(c, 'headers', true)
    if (typeof headers === 'string') return headers
    const query = transformSet(c, 'querystring', false)
    if (typeof query === 'string') return query
    const uri = str(obj(c.replace)?.uri)
    if (uri !== undefined && (uri.includes('$(') || !uri.startsWith('/'))) return 'replace.uri must be a plain path starting with "/"'
    return { features: [feature('requestTransform', { headers, query, ...(uri !== undefined ? { path: uri } : {}) })] }
  },
}

const responseTransformer: PluginDef = {
  fields: ['remove', 'rename', 'replace', 'add', 'append'],
  translate(c) {
    const bad = unsupportedParts(c, ['headers'])
    if (bad) return bad
    if (str(obj(c.replace)?.uri) !== undefined) return 'replace.uri is not a response-transformer field'
    const headers = transformSet(c, 'headers', true)
    if (typeof headers === 'string') return headers
    return { features: [feature('responseTransform', { headers })] }
  },
}

/** Portico's own metrics and tracing cover these: accepted, nothing to add per route. */
const observability = (fields: readonly string[]): PluginDef => ({ fields, translate: () => ({ features: [] }) })

export const PLUGINS: Readonly<Record<string, PluginDef>> = {
  'key-auth': keyAuth,
  'basic-auth': basicAuth,
  jwt,
  acl,
  'rate-limiting': rateLimiting,
  cors,
  'ip-restriction': ipRestriction,
  'request-size-limiting': requestSizeLimiting,
  'correlation-id': correlationId,
  'request-transformer': requestTransformer,
  'response-transformer': responseTransformer,
  prometheus: observability(['per_consumer', 'status_code_metrics', 'latency_metrics', 'bandwidth_metrics', 'upstream_health_metrics', 'ai_metrics', 'wasm_metrics']),
  opentelemetry: observability(['endpoint', 'traces_endpoint', 'logs_endpoint', 'metrics', 'headers', 'resource_attributes', 'queue', 'batch_span_count', 'batch_flush_delay', 'connect_timeout', 'send_timeout', 'read_timeout', 'http_response_header_for_traceid', 'header_type', 'sampling_rate', 'propagation']),
}

/** Kong's plugin priorities (higher runs first): the order features of one rule are listed in. */
export const PRIORITY: Readonly<Record<string, number>> = {
  'correlation-id': 100001,
  cors: 2000,
  jwt: 1450,
  'key-auth': 1250,
  'basic-auth': 1100,
  'ip-restriction': 990,
  'request-size-limiting': 951,
  acl: 950,
  'rate-limiting': 910,
  'request-transformer': 801,
  'response-transformer': 800,
  prometheus: 13,
  opentelemetry: 14,
}

/** A plugin's configuration checked against its known fields, then translated. */
export function translatePlugin(plugin: string, config: Json, env: PluginEnv): PluginTranslation | string {
  const def = PLUGINS[plugin]
  if (!def) return `plugin ${plugin} is not supported`
  for (const k of Object.keys(config)) if (!def.fields.includes(k)) return `plugin ${plugin}: unknown config field ${k}`
  try {
    const t = def.translate(config, env)
    return typeof t === 'string' ? `plugin ${plugin}: ${t}` : t
  } catch (e) {
    return `plugin ${plugin}: ${e instanceof Error ? e.message : String(e)}`
  }
}

export function isAuthPlugin(plugin: string): boolean {
  return PLUGINS[plugin]?.auth === true
}
