/**
 * BackendTrafficPolicy `rateLimit`: its schema and the feature it makes. BackendTrafficPolicy's
 * translator (src/policy/backend-traffic/translate.ts) spreads RATE_LIMIT_FIELDS into its schema
 * and calls rateLimitFeature(spec).
 *
 * Envoy Gateway's shape (api/v1alpha1/ratelimit_types.go): `{type?, global?: {rules}, local?:
 * {rules}}`, a rule `{clientSelectors?, limit: {requests, unit}, cost?, shared?, shadowMode?}`,
 * a selector `{headers?, methods?, path?, sourceCIDR?}`. Both `global` and `local` may be set.
 * Portico extensions (not in Envoy Gateway; a policy that uses them does not move back as is):
 *  - clientSelectors[].queryParams: like headers, on query parameters;
 *  - global.failClosed (503 when Redis cannot answer in time; Envoy's ratelimit filter
 *    `failure_mode_deny`, which Envoy Gateway does not expose), global.timeout (default 50ms);
 *  - responseHeaders: Limited | All | None (Envoy Gateway: ClientTrafficPolicy
 *    headers.disableRateLimitHeaders).
 * Not supported yet: cost.request.from Metadata, cost.response.
 */
import { BlockList, isIP } from 'node:net'
import { parseDuration } from '../../translate/duration.ts'
import { array, boolean, duration, integer, object, string, unsupported, type Rule, type Schema } from '../schema.ts'
import type { Feature } from '../translators.ts'
import { DEFAULT_GLOBAL_TIMEOUT_MS, type ClientSelector, type RateLimitRule, type RateLimitSpec, type ValueSelector } from './spec.ts'

const UNITS = ['Second', 'Minute', 'Hour', 'Day', 'Month', 'Year'] as const
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const

const distinctHasNoValue: Rule = {
  cel: "!has(self.type) || self.type != 'Distinct' || (!has(self.value) && !has(self.invert))",
  message: 'value and invert must not be set when type is Distinct',
  check: (v) => v.type !== 'Distinct' || (v.value === undefined && v.invert === undefined),
}
const matchHasValue: Rule = {
  cel: "(has(self.type) && self.type == 'Distinct') || has(self.value)",
  message: 'value is required unless type is Distinct',
  check: (v) => v.type === 'Distinct' || typeof v.value === 'string',
}

const valueMatch = (what: string) =>
  object(
    {
      type: string({ enum: ['Exact', 'RegularExpression', 'Distinct'], description: 'Exact (default), RegularExpression (whole value) or Distinct (one bucket per value).' }),
      name: string({ minLength: 1, maxLength: 256, description: `Name of the ${what}.` }),
      value: string({ maxLength: 1024, description: 'The value (Exact) or regular expression (RegularExpression); not with Distinct.' }),
      invert: boolean({ description: 'Match when the value does not match (or is absent); not with Distinct.' }),
    },
    { required: ['name'], rules: [distinctHasNoValue, matchHasValue] },
  )

const selector = object(
  {
    headers: array(valueMatch('request header'), { maxItems: 16, description: 'Request headers, all must match.' }),
    queryParams: array(valueMatch('query parameter'), { maxItems: 16, description: 'Portico extension: query parameters, all must match (as headers).' }),
    methods: array(
      object({ value: string({ enum: METHODS }), invert: boolean() }, { required: ['value'] }),
      { description: 'Request methods, any may match.' },
    ),
    path: object(
      {
        type: string({ enum: ['Exact', 'PathPrefix', 'RegularExpression'], description: 'PathPrefix (default), Exact or RegularExpression.' }),
        value: string({ maxLength: 1024, description: 'The path (default "/").' }),
        invert: boolean(),
      },
      { description: 'Request path.' },
    ),
    sourceCIDR: object(
      {
        type: string({ enum: ['Exact', 'Distinct'], description: 'Exact (default): the range shares one bucket; Distinct: one bucket per client address.' }),
        value: string({ minLength: 1, maxLength: 256, description: 'Client address range (the client IP after ClientTrafficPolicy clientIPDetection), e.g. 10.0.0.0/8, 0.0.0.0/0, 2001:db8::/64.' }),
      },
      { required: ['value'] },
    ),
  },
  {
    rules: [
      {
        cel: 'has(self.headers) || has(self.methods) || has(self.path) || has(self.sourceCIDR) || has(self.queryParams)',
        message: 'at least one of headers, methods, path or sourceCIDR must be specified',
        check: (v) => ['headers', 'methods', 'path', 'sourceCIDR', 'queryParams'].some((k) => v[k] !== undefined && v[k] !== null),
      },
    ],
  },
)

const costSpecifier = object(
  {
    from: string({ enum: ['Number', 'Metadata'], description: 'Number (Metadata is not supported yet).' }),
    number: integer({ minimum: 0, description: 'What a request takes from the counter; 0 only checks.' }),
    metadata: unsupported(),
  },
  { required: ['from'] },
)

const rule = object(
  {
    clientSelectors: array(selector, { maxItems: 8, description: 'All must match for the rule to count the request; none: all traffic.' }),
    limit: object(
      {
        requests: integer({ minimum: 0, description: 'Requests allowed per unit.' }),
        unit: string({ enum: UNITS, description: 'Second, Minute, Hour, Day, Month (30 days) or Year (365 days).' }),
      },
      { required: ['requests', 'unit'] },
    ),
    cost: object({ request: costSpecifier, response: unsupported('Response cost: not supported by Portico yet.') }),
    shared: boolean({ description: 'One bucket across every route the policy reaches (default: one per route rule).' }),
    shadowMode: boolean({ description: 'Count and report, never refuse.' }),
  },
  { required: ['limit'] },
)

/** The schema field BackendTrafficPolicy adds for rate limits. */
export const RATE_LIMIT_FIELDS: Record<'rateLimit', Schema> = {
  rateLimit: object(
    {
      type: string({ enum: ['Global', 'Local'], description: 'Deprecated: set global and/or local.' }),
      local: object({ rules: array(rule, { maxItems: 16 }) }, { description: 'Limits counted in each Portico process (shared by its worker threads).' }),
      global: object(
        {
          rules: array(rule, { maxItems: 128 }),
          failClosed: boolean({ description: 'Portico extension: answer 503 when Redis cannot be asked in time (default: let requests through).' }),
          timeout: duration('Portico extension: how long a request may wait for Redis (default 50ms).'),
        },
        { required: ['rules'], description: 'Limits counted in Redis, shared by every Portico replica (--redis-url).' },
      ),
      responseHeaders: string({
        enum: ['Limited', 'All', 'None'],
        description: 'Portico extension: X-RateLimit-* headers on 429 answers only (Limited, default), on every response (All), or none.',
      }),
    },
    { minProperties: 1, description: 'Rate limits: local (per process) and/or global (Redis).' },
  ),
}

type Json = Record<string, any>

function valueSelectors(list: Json[] | undefined, lower: boolean): ValueSelector[] | undefined {
  if (!Array.isArray(list)) return undefined
  return list.map((h) => ({
    name: lower ? String(h.name).toLowerCase() : String(h.name),
    type: h.type ?? 'Exact',
    ...(h.type === 'Distinct' ? {} : { value: String(h.value ?? '') }),
    invert: h.invert === true,
  }))
}

function clientSelector(s: Json): ClientSelector {
  const out: { -readonly [K in keyof ClientSelector]: ClientSelector[K] } = {}
  const headers = valueSelectors(s.headers, true)
  if (headers) out.headers = headers
  const query = valueSelectors(s.queryParams, false)
  if (query) out.queryParams = query
  if (Array.isArray(s.methods)) out.methods = s.methods.map((m: Json) => ({ value: String(m.value), invert: m.invert === true }))
  if (s.path) out.path = { type: s.path.type ?? 'PathPrefix', value: s.path.value ?? '/', invert: s.path.invert === true }
  if (s.sourceCIDR) out.sourceCIDR = { type: s.sourceCIDR.type ?? 'Exact', value: String(s.sourceCIDR.value) }
  return out
}

function rules(list: Json[] | undefined): RateLimitRule[] {
  return (list ?? []).map((r) => ({
    clientSelectors: (r.clientSelectors ?? []).map(clientSelector),
    requests: r.limit.requests,
    unit: r.limit.unit,
    cost: typeof r.cost?.request?.number === 'number' ? r.cost.request.number : 1,
    shared: r.shared === true,
    shadowMode: r.shadowMode === true,
  }))
}

/** Problems the schema cannot express: address ranges, regular expressions, Metadata cost. */
function problemOf(spec: RateLimitSpec, raw: Json): string | undefined {
  for (const [scope, block] of [['local', spec.local], ['global', spec.global]] as const) {
    for (const [i, r] of (block?.rules ?? []).entries()) {
      const at = `spec.rateLimit.${scope}.rules[${i}]`
      const from = raw[scope]?.rules?.[i]?.cost?.request?.from
      if (from === 'Metadata') return `${at}.cost.request.from: Metadata is not supported yet`
      for (const [j, s] of r.clientSelectors.entries()) {
        const sat = `${at}.clientSelectors[${j}]`
        if (s.sourceCIDR && !validCidr(s.sourceCIDR.value)) return `${sat}.sourceCIDR.value: ${JSON.stringify(s.sourceCIDR.value)} is not an address range`
        for (const v of [...(s.headers ?? []), ...(s.queryParams ?? [])])
          if (v.type === 'RegularExpression' && regexProblem(v.value!)) return `${sat}: ${regexProblem(v.value!)}`
        if (s.path?.type === 'RegularExpression' && regexProblem(s.path.value)) return `${sat}.path: ${regexProblem(s.path.value)}`
      }
    }
  }
  return undefined
}

export function validCidr(value: string): boolean {
  const slash = value.indexOf('/')
  const address = slash < 0 ? value : value.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return false
  if (slash < 0) return true
  const bits = value.slice(slash + 1)
  if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) return false
  try {
    new BlockList().addSubnet(address, Number(bits), family === 4 ? 'ipv4' : 'ipv6')
    return true
  } catch {
    return false
  }
}

function regexProblem(source: string): string | undefined {
  try {
    new RegExp(source)
    return undefined
  } catch (err) {
    return `${JSON.stringify(source)} is not a valid regular expression (${(err as Error).message})`
  }
}

/**
 * The `rateLimit` feature of a spec that passed the schema; undefined when it sets none; a
 * string when the policy is invalid for a reason the schema cannot express.
 */
export function rateLimitFeature(spec: Json): Extract<Feature, { scope: 'request' }> | string | undefined {
  const raw = spec.rateLimit as Json | undefined
  if (!raw) return undefined
  const local = rules(raw.local?.rules)
  const global = rules(raw.global?.rules)
  if (local.length === 0 && global.length === 0) return undefined
  const out: RateLimitSpec = {
    ...(local.length ? { local: { rules: local } } : {}),
    ...(global.length
      ? { global: { rules: global, failClosed: raw.global.failClosed === true, timeoutMs: parseDuration(raw.global.timeout) ?? DEFAULT_GLOBAL_TIMEOUT_MS } }
      : {}),
    responseHeaders: raw.responseHeaders ?? 'Limited',
  }
  const problem = problemOf(out, raw)
  if (problem) return problem
  return { scope: 'request', name: 'rateLimit', spec: out }
}
