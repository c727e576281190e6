/**
 * HTTPRoute rules → IR rules (one per rule × match), independent of the listener they end up
 * on: the hostnames are applied by the snapshot builder. Also computes the route's
 * ResolvedRefs condition and, when some part cannot be honoured, an UnsupportedValue reason.
 */
import { NONE, orNone } from './share.ts'
import type { HttpAction, HttpFilter, HttpMatch, HttpRetry, HttpRule, SessionPersistence, StringMatch, WeightedBackend } from '../ir/types.ts'
import type { PolicyIndex } from '../policy/attach.ts'
import type { K8sObject } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import type { Backends, RefProblem } from './backends.ts'
import { generationOf, nsOf } from './context.ts'
import { parseDuration } from './duration.ts'
import { parseByteSize } from './byte-size.ts'
import { translateFilters, type FilterEnv } from './filters.ts'
import { isCompositeRef, resolveComposite } from './composite.ts'
import { wantsStripPath, withStripPath } from './compat.ts'
import { narrowMatches, routeAnnotations, withUpstreamRewrite } from '../kong/annotations.ts'
import type { RankedRule } from './precedence.ts'
import { COND, REASON } from './reasons.ts'
import type { Condition } from './types.ts'
import { int, list, obj, objs, str, timestampOf, type Json } from './util.ts'

export interface TranslatedRoute {
  readonly rules: readonly RankedRule[]
  readonly resolvedRefs: Condition
  /** Accepted=False/UnsupportedValue when part of the route cannot be honoured. */
  readonly unsupported?: Condition
}

const RESPOND_500: HttpAction = { kind: 'respond', status: 500 }

export function translateHttpRoute(route: K8sObject, backends: Backends, gateways: readonly string[], register: boolean, policies?: PolicyIndex): TranslatedRoute {
  const ns = nsOf(route)
  const name = route.metadata.name
  const gen = generationOf(route)
  // GRPCRoutes come here rewritten as HTTPRoute rules (grpc-route.ts) and keep their own kind
  const owner = { kind: route.kind === 'GRPCRoute' ? 'GRPCRoute' : 'HTTPRoute', namespace: ns, name }
  const idKind = owner.kind.toLowerCase()
  const created = timestampOf(route.metadata.creationTimestamp)
  const refProblems: RefProblem[] = []
  const unsupported: string[] = []
  const env: FilterEnv = { route, backends, gateways, register, refProblems }
  const rules: RankedRule[] = []
  const streamIdle = translateStreamIdleTimeout(route)
  const maxBody = translateMaxBodySize(route)
  const stripPath = wantsStripPath(route)
  // konghq.com/methods and konghq.com/headers.* narrow every rule's matches (src/kong)
  const kongAnnotations = routeAnnotations(route)
  const kongIgnored = new Set<string>()

  objs(route.spec?.rules).forEach((rule, ruleIndex) => {
    const problems: string[] = []
    if (streamIdle.problem) problems.push(streamIdle.problem)
    if (maxBody.problem) problems.push(maxBody.problem)
    const rawMatches = Array.isArray(rule.matches) && rule.matches.length > 0 ? list(rule.matches) : [{}]
    const translated = rawMatches.map((m) => {
      const o = obj(m)
      if (o) return translateMatch(o, problems)
      problems.push('a match must be an object')
      return undefined
    })
    const matches = kongAnnotations ? narrowMatches(translated, kongAnnotations) : translated

    const ruleFilters = translateFilters(rule.filters, env, 'rule')
    problems.push(...ruleFilters.unsupported)
    let action: HttpAction
    if (ruleFilters.redirect) action = ruleFilters.redirect
    else {
      const forward = translateBackends(rule, env, problems)
      action = forward.redirect ?? forward.action
      if (forward.needsPrefixMatch) ruleFilters.needsPrefixMatch = true
    }
    if (ruleFilters.needsPrefixMatch && matches.some((m) => m && m.path.type !== 'PathPrefix'))
      problems.push('ReplacePrefixMatch needs PathPrefix matches')

    const timeouts = translateTimeouts(obj(rule.timeouts), problems)
    const retry = translateRetry(obj(rule.retry), problems)
    const session = translateSession(obj(rule.sessionPersistence), problems)

    // Kong's plugins (src/kong) join the rule's policies; one that cannot be honoured is a problem
    const kong = policies?.kong?.rule(route, rule)
    if (kong?.problems.length) problems.push(...kong.problems)
    for (const a of kong?.ignored ?? []) kongIgnored.add(a)
    const portico = policies?.rulePolicies(route, str(rule.name))
    const rulePolicies = kong?.policies ? [...(portico ?? []), ...kong.policies] : portico
    const broken = problems.length > 0
    if (broken) unsupported.push(...problems.map((p) => `rule ${ruleIndex}: ${p}`))
    matches.forEach((match, matchIndex) => {
      if (!match) return // an unusable match (e.g. invalid regex) matches nothing
      const r: { -readonly [K in keyof HttpRule]: HttpRule[K] } = {
        id: `${idKind}/${ns}/${name}/rule/${ruleIndex}/match/${matchIndex}`,
        owner,
        match,
        // a broken rule must not be skipped silently: it answers 500 (spec for unknown filters)
        filters: broken ? NONE : orNone(withUpstreamRewrite(stripPath ? withStripPath(ruleFilters.filters, matches) : ruleFilters.filters, match, kong?.rewrite, stripPath)),
        action: broken ? RESPOND_500 : action,
      }
      if (!broken && timeouts) r.timeouts = timeouts
      if (!broken && retry) r.retry = retry
      // Kong Service read-timeout / retries (src/kong) where the route itself says nothing
      if (!broken && kong?.backendTimeoutMs !== undefined && r.timeouts?.backendRequestMs === undefined) r.timeouts = { ...r.timeouts, backendRequestMs: kong.backendTimeoutMs }
      if (!broken && kong?.retry && !r.retry) r.retry = kong.retry
      if (!broken && session) r.sessionPersistence = session
      if (!broken && streamIdle.ms !== undefined) r.streamIdleTimeoutMs = streamIdle.ms
      if (!broken && maxBody.bytes !== undefined) r.maxBodyBytes = maxBody.bytes
      if (!broken && rulePolicies) r.policies = rulePolicies
      rules.push({ rule: r, created, routeKey: `${ns}/${name}`, ruleIndex, matchIndex })
    })
  })

  const shown = refProblems.filter((p) => !p.silent)
  const resolvedRefs = shown.length
    ? condition(COND.ResolvedRefs, 'False', shown[0]!.reason, uniqueMessages(shown), gen)
    : condition(COND.ResolvedRefs, 'True', REASON.ResolvedRefs, 'All references are resolved', gen)
  const result: { -readonly [K in keyof TranslatedRoute]: TranslatedRoute[K] } = { rules, resolvedRefs }
  if (unsupported.length) result.unsupported = condition(COND.Accepted, 'False', REASON.UnsupportedValue, unsupported.join('; '), gen)
  else if (kongIgnored.size) result.unsupported = condition(COND.Accepted, 'True', REASON.Accepted, `Route is accepted; ignored: ${[...kongIgnored].sort().join(', ')} (not supported yet)`, gen)
  return result
}

function uniqueMessages(problems: readonly RefProblem[]): string {
  return [...new Set(problems.map((p) => p.message))].join('; ')
}

// ---------------------------------------------------------------- matches

/** Returns undefined for a match that can never be served (it is dropped, with a problem). */
function translateMatch(m: Json, problems: string[]): HttpMatch | undefined {
  // A malformed field must not widen the match (a missing path means "/", a broken one must not)
  for (const [field, ok] of [
    ['path', m.path === undefined || obj(m.path) !== undefined],
    ['headers', m.headers === undefined || (Array.isArray(m.headers) && m.headers.every((h) => obj(h)))],
    ['queryParams', m.queryParams === undefined || (Array.isArray(m.queryParams) && m.queryParams.every((h) => obj(h)))],
    ['method', m.method === undefined || typeof m.method === 'string'],
  ] as const) {
    if (!ok) {
      problems.push(`match ${field} is malformed`)
      return undefined
    }
  }
  const p = obj(m.path)
  const type = str(p?.type) ?? 'PathPrefix'
  if (p?.value !== undefined && typeof p.value !== 'string') {
    problems.push('path value must be a string')
    return undefined
  }
  const value = str(p?.value) ?? '/'
  if (type !== 'Exact' && type !== 'PathPrefix' && type !== 'RegularExpression') {
    problems.push(`path match type ${type} is not supported`)
    return undefined
  }
  if (type !== 'RegularExpression' && !value.startsWith('/')) {
    problems.push(`path ${value} must start with "/"`)
    return undefined
  }
  if (type === 'RegularExpression' && !validRegex(value)) {
    problems.push(`invalid path regular expression ${value}`)
    return undefined
  }
  const headers = stringMatches(m.headers, true, problems)
  const query = stringMatches(m.queryParams, false, problems)
  if (!headers || !query) return undefined
  const match: { -readonly [K in keyof HttpMatch]: HttpMatch[K] } = { path: { type, value }, headers: orNone(headers), query: orNone(query) }
  const method = str(m.method)
  if (method) match.method = method.toUpperCase()
  return match
}

function stringMatches(raw: unknown, lowerCase: boolean, problems: string[]): StringMatch[] | undefined {
  const out: StringMatch[] = []
  const seen = new Set<string>()
  for (const h of objs(raw)) {
    const rawName = str(h.name)
    const value = str(h.value) ?? ''
    const type = str(h.type) ?? 'Exact'
    if (!rawName) {
      problems.push('header/query match needs a name')
      return undefined
    }
    if (type !== 'Exact' && type !== 'RegularExpression') {
      problems.push(`match type ${type} is not supported`)
      return undefined
    }
    if (type === 'RegularExpression' && !validRegex(value)) {
      problems.push(`invalid regular expression ${value}`)
      return undefined
    }
    const name = lowerCase ? rawName.toLowerCase() : rawName
    // the spec: when names repeat, only the first entry is considered
    if (seen.has(name)) continue
    seen.add(name)
    out.push({ name, type, value })
  }
  return out
}

function validRegex(v: string): boolean {
  try {
    new RegExp(v)
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------- backends

function translateBackends(rule: Json, env: FilterEnv, problems: string[]): { action: HttpAction; redirect?: HttpAction; needsPrefixMatch: boolean } {
  const refs = objs(rule.backendRefs)
  let needsPrefixMatch = false
  // no backendRefs and no redirect: the spec wants a 500 for matching requests
  if (refs.length === 0) return { action: RESPOND_500, needsPrefixMatch }
  const choices: WeightedBackend[] = []
  const redirects: HttpAction[] = []
  for (const ref of refs) {
    const weight = ref.weight === undefined ? 1 : int(ref.weight)
    if (weight === undefined || weight < 0 || weight > 1_000_000) {
      problems.push(`backendRef weight ${String(ref.weight)} must be 0-1000000`)
      continue
    }
    const filters = translateFilters(ref.filters, env, 'backend')
    problems.push(...filters.unsupported)
    if (filters.needsPrefixMatch) needsPrefixMatch = true
    // weight 0 (or a redirect instead of forwarding): no traffic to this backend, but the
    // reference is still validated for status
    const register = env.register && weight > 0 && !filters.redirect
    if (isCompositeRef(ref)) {
      // gateway.portico.dev Composite: members called together (translate/composite.ts)
      const c = resolveComposite(env.route, ref, env.backends, env.gateways, register)
      if ('problem' in c) env.refProblems.push(c.problem)
      else env.refProblems.push(...c.problems)
      if (weight === 0) continue
      if (filters.redirect) redirects.push(filters.redirect)
      choices.push('problem' in c ? { weight, invalid: c.problem.message, filters: [] } : { weight, composite: c.composite, filters: filters.filters as HttpFilter[] })
      continue
    }
    const r = env.backends.resolve(env.route, ref, 'http', env.gateways, register)
    if ('problem' in r && !r.problem.silent) env.refProblems.push(r.problem)
    if (weight === 0) continue
    if (filters.redirect) redirects.push(filters.redirect)
    const choice: WeightedBackend = 'problem' in r ? { weight, invalid: r.problem.message, filters: NONE } : { weight, target: { pool: r.pool }, filters: orNone(filters.filters as HttpFilter[]) }
    choices.push(choice)
  }
  if (redirects.length > 0) {
    // A redirect on a backendRef answers for that backend's share; the IR can express it only
    // when that backend is the only one receiving traffic.
    if (choices.length === 1) return { action: RESPOND_500, redirect: redirects[0], needsPrefixMatch }
    problems.push('RequestRedirect on a backendRef is supported only when it is the only backend with weight')
  }
  if (choices.length === 0) return { action: RESPOND_500, needsPrefixMatch }
  const only = choices.length === 1 ? choices[0]! : undefined
  if (only?.target && only.filters.length === 0 && Object.keys(only).length === 3 && Object.keys(only.target).length === 1) {
    // the common rule: all of it to one pool; one action object for every such rule of the translation
    const action: HttpAction = { kind: 'forward', backends: [only] }
    return { action: env.backends.sharer.share(`forward ${only.weight} ${only.target.pool}`, action), needsPrefixMatch }
  }
  return { action: { kind: 'forward', backends: choices }, needsPrefixMatch }
}

// ---------------------------------------------------------------- timeouts, retry, session

/** Portico's per-route stream idle timeout: no Gateway API field offers one, so an annotation. */
export const STREAM_IDLE_TIMEOUT_ANNOTATION = 'portico.dev/stream-idle-timeout'

/**
 * The annotation as a Gateway API Duration for every rule of the route: how long a streaming
 * response, streamed upload or WebSocket may stay silent; "0s" means never cut for silence.
 */
function translateStreamIdleTimeout(route: K8sObject): { ms?: number; problem?: string } {
  const raw = obj(route.metadata.annotations)?.[STREAM_IDLE_TIMEOUT_ANNOTATION]
  if (raw === undefined) return {}
  const ms = parseDuration(raw)
  if (ms === undefined) return { problem: `annotation ${STREAM_IDLE_TIMEOUT_ANNOTATION} ${String(raw)} is not a valid duration` }
  return { ms }
}

/** Portico's per-route request body limit, like nginx's client_max_body_size per location. */
export const MAX_BODY_SIZE_ANNOTATION = 'portico.dev/max-body-size'

/** "10Mi", "512k", "1048576"; "0" lifts the limit. An invalid value is a problem (the rules answer 500). */
function translateMaxBodySize(route: K8sObject): { bytes?: number; problem?: string } {
  const raw = obj(route.metadata.annotations)?.[MAX_BODY_SIZE_ANNOTATION]
  if (raw === undefined) return {}
  const bytes = parseByteSize(raw)
  if (bytes === undefined) return { problem: `annotation ${MAX_BODY_SIZE_ANNOTATION} ${String(raw)} is not a valid size` }
  return { bytes }
}

function translateTimeouts(t: Json | undefined, problems: string[]): HttpRule['timeouts'] {
  if (!t) return undefined
  const out: { requestMs?: number; backendRequestMs?: number } = {}
  for (const [field, key] of [
    ['request', 'requestMs'],
    ['backendRequest', 'backendRequestMs'],
  ] as const) {
    if (t[field] === undefined) continue
    const ms = parseDuration(t[field])
    if (ms === undefined) problems.push(`timeouts.${field} ${String(t[field])} is not a valid duration`)
    // "0s" disables the timeout; it stays in the IR as 0 so the data plane's default wait does not apply
    else out[key] = ms
  }
  if (out.requestMs && out.backendRequestMs !== undefined && out.backendRequestMs > out.requestMs)
    problems.push('timeouts.backendRequest must not exceed timeouts.request')
  return out.requestMs !== undefined || out.backendRequestMs !== undefined ? out : undefined
}

function translateRetry(r: Json | undefined, problems: string[]): HttpRetry | undefined {
  if (!r) return undefined
  const codes: number[] = []
  for (const c of list(r.codes)) {
    const code = int(c)
    if (code === undefined || code < 400 || code > 599) problems.push(`retry code ${String(c)} must be 400-599`)
    else if (!codes.includes(code)) codes.push(code)
  }
  const attempts = r.attempts === undefined ? 1 : int(r.attempts)
  if (attempts === undefined || attempts < 0) {
    problems.push(`retry attempts ${String(r.attempts)} must be a non-negative integer`)
    return undefined
  }
  let backoffMs = 0
  if (r.backoff !== undefined) {
    const ms = parseDuration(r.backoff)
    if (ms === undefined) problems.push(`retry backoff ${String(r.backoff)} is not a valid duration`)
    else backoffMs = ms
  }
  return { codes: codes.sort((a, b) => a - b), attempts, backoffMs }
}

function translateSession(s: Json | undefined, problems: string[]): SessionPersistence | undefined {
  if (!s) return undefined
  const type = str(s.type) ?? 'Cookie'
  if (type !== 'Cookie' && type !== 'Header') {
    problems.push(`sessionPersistence type ${type} is not supported`)
    return undefined
  }
  const out: { -readonly [K in keyof SessionPersistence]: SessionPersistence[K] } = {
    type,
    name: str(s.sessionName) ?? (type === 'Cookie' ? 'portico-session' : 'x-portico-session'),
  }
  if (s.absoluteTimeout !== undefined) {
    const ms = parseDuration(s.absoluteTimeout)
    if (ms === undefined) problems.push(`sessionPersistence absoluteTimeout ${String(s.absoluteTimeout)} is not a valid duration`)
    else out.absoluteTimeoutMs = ms
  }
  return out
}
