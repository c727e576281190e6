/**
 * Request → rule matching, compiled once per snapshot (Hono's build-once tables).
 *
 * host → listener: the most specific listener hostname that matches the Host header.
 * listener → virtual hosts: every virtual host whose name matches, in IR order
 * (exact, then wildcards longest first, then "*"), and within each the first rule that holds.
 * RegExps are compiled here, never per request.
 */
import type { HttpListener, HttpMatch, StringMatch, VirtualHost } from '../../ir/types.ts'

/** What a rule matcher reads from a request. */
export interface MatchInput {
  readonly method: string
  /** Path as received, without the query. */
  readonly path: string
  readonly headers: Headers
  /** First value of a query parameter (parsed lazily by the caller). */
  queryParam(name: string): string | undefined
}

const enum PathKind {
  Exact,
  Prefix,
  Regex,
}

interface ValueTest {
  readonly name: string
  readonly exact?: string
  readonly regex?: RegExp
}

export class RuleMatcher {
  readonly #pathKind: PathKind
  readonly #path: string
  readonly #regex: RegExp | undefined
  readonly #method: string | undefined
  readonly #headers: readonly ValueTest[]
  readonly #query: readonly ValueTest[]
  /** For ReplacePrefixMatch: the prefix without its trailing slash ("" for "/"). */
  readonly prefix: string | undefined

  constructor(match: HttpMatch) {
    const { type, value } = match.path
    this.#pathKind = type === 'Exact' ? PathKind.Exact : type === 'PathPrefix' ? PathKind.Prefix : PathKind.Regex
    // Gateway API: a trailing "/" in a PathPrefix is ignored, matching is per path element.
    this.#path = type === 'PathPrefix' ? trimTrailingSlashes(value) : value
    this.#regex = type === 'RegularExpression' ? fullMatch(value) : undefined
    this.prefix = type === 'PathPrefix' ? this.#path : undefined
    this.#method = match.method?.toUpperCase()
    this.#headers = match.headers.map((m) => valueTest(m, m.name.toLowerCase()))
    this.#query = match.query.map((m) => valueTest(m, m.name))
  }

  matches(input: MatchInput): boolean {
    if (!this.#pathMatches(input.path)) return false
    if (this.#method !== undefined && input.method !== this.#method) return false
    for (const test of this.#headers) if (!testValue(test, input.headers.get(test.name) ?? undefined)) return false
    for (const test of this.#query) if (!testValue(test, input.queryParam(test.name))) return false
    return true
  }

  #pathMatches(path: string): boolean {
    switch (this.#pathKind) {
      case PathKind.Exact:
        return path === this.#path
      case PathKind.Prefix: {
        const prefix = this.#path
        if (prefix === '') return true
        if (!path.startsWith(prefix)) return false
        return path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* / */
      }
      case PathKind.Regex:
        return this.#regex!.test(path)
    }
  }
}

function valueTest(m: StringMatch, name: string): ValueTest {
  return m.type === 'Exact' ? { name, exact: m.value } : { name, regex: fullMatch(m.value) }
}

function testValue(test: ValueTest, value: string | undefined): boolean {
  if (value === undefined) return false
  return test.exact !== undefined ? value === test.exact : test.regex!.test(value)
}

/** Gateway API regex matches are full matches (Envoy uses RE2 full_match). */
function fullMatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`)
}

export function trimTrailingSlashes(value: string): string {
  let end = value.length
  while (end > 0 && value.charCodeAt(end - 1) === 47) end--
  return value.slice(0, end)
}

// ---------------------------------------------------------------- hostnames

/** Exact name, "*.suffix" (any depth ≥ 1 label), or "*" / absent (any host). */
export class HostnamePattern {
  readonly #exact: string | undefined
  /** ".example.com" for "*.example.com". */
  readonly #suffix: string | undefined

  constructor(readonly pattern: string | undefined) {
    const p = pattern?.toLowerCase()
    if (p === undefined || p === '' || p === '*') return
    if (p.startsWith('*.')) this.#suffix = p.slice(1)
    else this.#exact = p
  }

  get isExact(): boolean {
    return this.#exact !== undefined
  }

  /** Ranking for "most specific first": exact > longer wildcard > any. */
  get specificity(): number {
    if (this.#exact !== undefined) return 1_000_000
    if (this.#suffix !== undefined) return this.#suffix.length
    return -1
  }

  matches(host: string): boolean {
    if (this.#exact !== undefined) return host === this.#exact
    if (this.#suffix !== undefined) return host.length > this.#suffix.length && host.endsWith(this.#suffix)
    return true
  }
}

/**
 * Host header → the name used for matching: lower-case, port stripped, trailing dot dropped.
 * IPv6 literals keep their brackets ("[::1]").
 */
export function normalizeHost(hostHeader: string | null): string {
  if (!hostHeader) return ''
  let end = hostHeader.length
  if (hostHeader.charCodeAt(0) === 91 /* [ */) {
    end = hostHeader.indexOf(']') + 1 || end
  } else {
    const colon = hostHeader.lastIndexOf(':')
    if (colon >= 0) end = colon
  }
  if (end > 0 && hostHeader.charCodeAt(end - 1) === 46 /* . */) end--
  const host = end === hostHeader.length ? hostHeader : hostHeader.slice(0, end)
  return host.toLowerCase()
}

// ---------------------------------------------------------------- tables

export interface MatchableRule {
  readonly matcher: RuleMatcher
}

interface CompiledVirtualHost<R> {
  readonly pattern: HostnamePattern
  readonly rules: readonly R[]
}

export interface CompiledListener<R> {
  readonly ir: HttpListener
  readonly pattern: HostnamePattern
  /** Exact-name virtual hosts, one Map lookup per request. */
  readonly exact: ReadonlyMap<string, CompiledVirtualHost<R>>
  /** Wildcard and catch-all virtual hosts, in precedence order. */
  readonly patterns: readonly CompiledVirtualHost<R>[]
}

/** All listeners of one port, most specific hostname first. */
export class PortRouter<R extends MatchableRule> {
  readonly listeners: readonly CompiledListener<R>[]

  constructor(listeners: readonly HttpListener[], compileRule: (rule: VirtualHost['rules'][number], listener: HttpListener) => R) {
    const compiled = listeners.map((listener) => compileListener(listener, compileRule))
    // The IR promises this order already; sorting (stable) keeps us correct if it ever doesn't.
    this.listeners = compiled
      .map((l, i) => ({ l, i }))
      .sort((a, b) => b.l.pattern.specificity - a.l.pattern.specificity || a.i - b.i)
      .map(({ l }) => l)
  }

  /** The listener that owns this host, or undefined (→ 404). */
  listenerFor(host: string): CompiledListener<R> | undefined {
    for (const listener of this.listeners) if (listener.pattern.matches(host)) return listener
    return undefined
  }

  /** First rule that matches, trying each matching virtual host in precedence order. */
  route(host: string, input: MatchInput): { listener: CompiledListener<R>; rule: R } | undefined {
    const listener = this.listenerFor(host)
    if (!listener) return undefined
    const rule = matchInListener(listener, host, input)
    return rule ? { listener, rule } : undefined
  }
}

export function matchInListener<R extends MatchableRule>(listener: CompiledListener<R>, host: string, input: MatchInput): R | undefined {
  const exact = listener.exact.get(host)
  if (exact) {
    const rule = firstMatch(exact.rules, input)
    if (rule) return rule
  }
  for (const vhost of listener.patterns) {
    if (!vhost.pattern.matches(host)) continue
    const rule = firstMatch(vhost.rules, input)
    if (rule) return rule
  }
  return undefined
}

function firstMatch<R extends MatchableRule>(rules: readonly R[], input: MatchInput): R | undefined {
  for (const rule of rules) if (rule.matcher.matches(input)) return rule
  return undefined
}

function compileListener<R>(listener: HttpListener, compileRule: (rule: VirtualHost['rules'][number], listener: HttpListener) => R): CompiledListener<R> {
  const exact = new Map<string, CompiledVirtualHost<R>>()
  const patterns: CompiledVirtualHost<R>[] = []
  for (const vhost of listener.virtualHosts) {
    const compiled = { pattern: new HostnamePattern(vhost.hostname), rules: vhost.rules.map((r) => compileRule(r, listener)) }
    const name = vhost.hostname.toLowerCase()
    if (compiled.pattern.isExact) {
      // Two virtual hosts with the same exact name: keep the first's precedence, append the rest.
      const existing = exact.get(name)
      exact.set(name, existing ? { pattern: existing.pattern, rules: [...existing.rules, ...compiled.rules] } : compiled)
    } else {
      patterns.push(compiled)
    }
  }
  return { ir: listener, pattern: new HostnamePattern(listener.hostname), exact, patterns }
}
