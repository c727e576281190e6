/**
 * Request → rule matching, compiled once per snapshot (Hono's build-once tables).
 *
 * host → listener: the most specific listener hostname that matches the Host header.
 * listener → virtual hosts: every virtual host whose name matches, in IR order
 * (exact, then wildcards longest first, then "*"), and within each the first rule that holds.
 * RegExps are compiled here, never per request.
 *
 * Cost must not grow with the number of routes: exact hostnames are one Map lookup, wildcard
 * hostnames one lookup per label of the Host, and a virtual host with many rules indexes them
 * by path (RuleTable), so a request tests only the rules whose path can match it, still in
 * precedence order.
 */
import type { HttpListener, HttpMatch, StringMatch, VirtualHost } from '../../ir/types.ts'

/** Header lookup as matching and hashing need it: Fetch Headers, or the front's parsed head (front/request-head.ts). */
export interface FieldReader {
  get(name: string): string | null
}

/** What a rule matcher reads from a request. */
export interface MatchInput {
  readonly method: string
  /** Path as received, without the query. */
  readonly path: string
  readonly headers: FieldReader
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
  /** How RuleTable can index this rule: by exact path, by path prefix, or not at all (regex). */
  readonly pathIndex: { readonly kind: 'exact' | 'prefix'; readonly value: string } | undefined

  constructor(match: HttpMatch) {
    const { type, value } = match.path
    this.#pathKind = type === 'Exact' ? PathKind.Exact : type === 'PathPrefix' ? PathKind.Prefix : PathKind.Regex
    // Gateway API: a trailing "/" in a PathPrefix is ignored, matching is per path element.
    this.#path = type === 'PathPrefix' ? trimTrailingSlashes(value) : value
    this.#regex = type === 'RegularExpression' ? fullMatch(value) : undefined
    this.prefix = type === 'PathPrefix' ? this.#path : undefined
    this.pathIndex = type === 'Exact' ? { kind: 'exact', value } : type === 'PathPrefix' ? { kind: 'prefix', value: this.#path } : undefined
    this.#method = match.method?.toUpperCase()
    this.#headers = match.headers.length === 0 ? NO_TESTS : match.headers.map((m) => valueTest(m, m.name.toLowerCase()))
    this.#query = match.query.length === 0 ? NO_TESTS : match.query.map((m) => valueTest(m, m.name))
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

/** Shared by every matcher without header or query tests (most of them, at thousands of routes). */
const NO_TESTS: readonly ValueTest[] = Object.freeze([])

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
  // Keep-alive clients repeat the same Host: reuse the last answer instead of lower-casing again.
  if (hostHeader === lastHost.header) return lastHost.normalized
  const normalized = normalizeUncached(hostHeader)
  lastHost = { header: hostHeader, normalized }
  return normalized
}

let lastHost = { header: '', normalized: '' }

function normalizeUncached(hostHeader: string): string {
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

interface CompiledVirtualHost<R extends MatchableRule> {
  readonly pattern: HostnamePattern
  readonly rules: RuleTable<R>
}

export interface CompiledListener<R extends MatchableRule> {
  readonly ir: HttpListener
  readonly pattern: HostnamePattern
  /** Exact-name virtual hosts, one Map lookup per request. */
  readonly exact: ReadonlyMap<string, CompiledVirtualHost<R>>
  /** Wildcard virtual hosts by suffix (".example.com" for "*.example.com"): one lookup per label. */
  readonly wildcards: ReadonlyMap<string, CompiledVirtualHost<R>>
  /** The catch-all ("*" or no hostname) virtual host, tried last. */
  readonly catchAll: CompiledVirtualHost<R> | undefined
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

  /** The rule alone, for callers that do not need its listener (no result object per request). */
  match(host: string, input: MatchInput): R | undefined {
    const listener = this.listenerFor(host)
    return listener ? matchInListener(listener, host, input) : undefined
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
    const rule = exact.rules.first(input)
    if (rule) return rule
  }
  // Wildcards, longest suffix first: "*.b.example.com" before "*.example.com" (a wildcard needs
  // at least one label before its suffix, so the host's own first label is never a suffix start).
  if (listener.wildcards.size > 0) {
    for (let dot = host.indexOf('.', 1); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      const vhost = listener.wildcards.get(host.slice(dot))
      if (!vhost) continue
      const rule = vhost.rules.first(input)
      if (rule) return rule
    }
  }
  return listener.catchAll?.rules.first(input)
}

/** Below this many rules a plain scan is cheaper than the index lookups. */
const INDEX_MIN_RULES = 16

/**
 * A virtual host's rules in precedence order. Large tables are indexed by path: a request looks
 * up the rules with its exact path, those whose prefix is one of its element-wise prefixes, and
 * the regex rules, then tests them in their original order, so the first rule that matches is
 * the same one a full scan would find.
 *
 * An index entry is a rule's position, or the positions (ascending) when several rules share the
 * path: at thousands of routes almost every path is one rule's, and a number costs no array
 * (memory per route, and the table is rebuilt with every plan).
 */
export class RuleTable<R extends MatchableRule> {
  readonly #exact = new Map<string, Positions>()
  readonly #prefix = new Map<string, Positions>()
  readonly #unindexed: number[] = []
  readonly #indexed: boolean

  constructor(readonly rules: readonly R[]) {
    this.#indexed = rules.length >= INDEX_MIN_RULES
    if (!this.#indexed) return
    for (let i = 0; i < rules.length; i++) {
      const key = rules[i]!.matcher.pathIndex
      if (!key) {
        this.#unindexed.push(i)
        continue
      }
      const map = key.kind === 'exact' ? this.#exact : this.#prefix
      const held = map.get(key.value)
      if (held === undefined) map.set(key.value, i)
      else if (typeof held === 'number') map.set(key.value, [held, i])
      else held.push(i)
    }
  }

  first(input: MatchInput): R | undefined {
    const rules = this.rules
    if (!this.#indexed) {
      for (const rule of rules) if (rule.matcher.matches(input)) return rule
      return undefined
    }
    const candidates = this.#candidates(input.path)
    if (candidates.length === 1 && typeof candidates[0] === 'number') {
      const rule = rules[candidates[0]]!
      return rule.matcher.matches(input) ? rule : undefined
    }
    // Each list is in precedence order: repeatedly test the lowest index among their heads.
    const heads = new Array<number>(candidates.length).fill(0)
    for (;;) {
      let best = -1
      let from = -1
      for (let c = 0; c < candidates.length; c++) {
        const list = candidates[c]!
        const head = heads[c]!
        const at = typeof list === 'number' ? (head === 0 ? list : -1) : head < list.length ? list[head]! : -1
        if (at >= 0 && (best < 0 || at < best)) {
          best = at
          from = c
        }
      }
      if (best < 0) return undefined
      heads[from]!++
      const rule = rules[best]!
      if (rule.matcher.matches(input)) return rule
    }
  }

  #candidates(path: string): Positions[] {
    const lists: Positions[] = []
    const exact = this.#exact.get(path)
    if (exact !== undefined) lists.push(exact)
    if (this.#prefix.size > 0) {
      // Element-wise prefixes of the path: "", then up to each "/", then the whole path.
      const catchAll = this.#prefix.get('')
      if (catchAll !== undefined) lists.push(catchAll)
      for (let slash = path.indexOf('/', 1); slash > 0; slash = path.indexOf('/', slash + 1)) {
        const list = this.#prefix.get(path.slice(0, slash))
        if (list !== undefined) lists.push(list)
      }
      if (path !== '') {
        const whole = this.#prefix.get(path)
        if (whole !== undefined) lists.push(whole)
      }
    }
    if (this.#unindexed.length > 0) lists.push(this.#unindexed)
    return lists
  }
}

/** Positions of the rules under one index key: one, or several in ascending order. */
type Positions = number | number[]

function compileListener<R extends MatchableRule>(listener: HttpListener, compileRule: (rule: VirtualHost['rules'][number], listener: HttpListener) => R): CompiledListener<R> {
  // Gather rules per hostname first: two virtual hosts with the same name keep the first's
  // precedence and append the rest.
  const exact = new Map<string, R[]>()
  const wildcards = new Map<string, R[]>()
  const catchAll: R[] = []
  let hasCatchAll = false
  for (const vhost of listener.virtualHosts) {
    const rules = vhost.rules.map((r) => compileRule(r, listener))
    const name = (vhost.hostname ?? '').toLowerCase()
    if (name === '' || name === '*') {
      hasCatchAll = true
      catchAll.push(...rules)
    } else {
      const map = name.startsWith('*.') ? wildcards : exact
      const key = name.startsWith('*.') ? name.slice(1) : name
      const existing = map.get(key)
      if (existing) existing.push(...rules)
      else map.set(key, rules)
    }
  }
  const table = (name: string | undefined, rules: R[]): CompiledVirtualHost<R> => ({ pattern: new HostnamePattern(name), rules: new RuleTable(rules) })
  return {
    ir: listener,
    pattern: new HostnamePattern(listener.hostname),
    exact: new Map([...exact].map(([name, rules]) => [name, table(name, rules)])),
    wildcards: new Map([...wildcards].map(([suffix, rules]) => [suffix, table(`*${suffix}`, rules)])),
    catchAll: hasCatchAll ? table(undefined, catchAll) : undefined,
  }
}
