/**
 * A rule's clientSelectors compiled to one function over the request head: undefined when the
 * rule does not apply to the request, else the request's *distinct part* ("" when the rule has
 * no Distinct selector: one bucket for everyone it matches). Envoy Gateway's semantics:
 *  - every selector must hold; within one, headers (and queryParams) AND-ed, methods OR-ed;
 *  - Exact / RegularExpression (the whole value): a missing field does not match, unless
 *    `invert`, which matches when the value does not match or the field is absent;
 *  - Distinct: the field's value is part of the bucket; a request without it is not counted;
 *  - path: PathPrefix by segments ("/api" covers "/api" and "/api/x", not "/apix"), Exact,
 *    RegularExpression; on the path as sent, without the query;
 *  - sourceCIDR: the client IP (after ClientTrafficPolicy clientIPDetection) in the range;
 *    Distinct adds the address to the bucket.
 */
import { BlockList, isIP } from 'node:net'
import type { PolicyRequest } from '../runtime.ts'
import { principalOf } from '../security/request.ts'
import type { ClientSelector, PathSelector, ValueSelector } from './spec.ts'

export type Selector = (req: PolicyRequest) => string | undefined

const SEP = '\u0000'

export function compileSelectors(selectors: readonly ClientSelector[]): Selector {
  if (selectors.length === 0) return () => ''
  const parts = selectors.map(compileOne)
  if (parts.length === 1) return parts[0]!
  return (req) => {
    let key = ''
    for (let i = 0; i < parts.length; i++) {
      const k = parts[i]!(req)
      if (k === undefined) return undefined
      if (k !== '') key = key === '' ? k : key + SEP + k
    }
    return key
  }
}

type Check = (req: PolicyRequest, query: () => URLSearchParams) => string | undefined | boolean

function compileOne(s: ClientSelector): Selector {
  // Each check: false = no match, true = match (nothing distinct), string = match with a distinct part.
  const checks: Check[] = []
  if (s.methods && s.methods.length > 0) {
    const methods = s.methods
    checks.push((req) => methods.some((m) => (req.method === m.value) !== m.invert))
  }
  if (s.path) {
    const path = pathMatcher(s.path)
    checks.push((req) => path(req.path))
  }
  if (s.sourceCIDR) {
    const inRange = cidrMatcher(s.sourceCIDR.value)
    const distinct = s.sourceCIDR.type === 'Distinct'
    checks.push((req) => (inRange(req.clientIp) ? (distinct ? `ip=${req.clientIp}` : true) : false))
  }
  if (s.identity) {
    const kind = s.identity
    checks.push((req) => {
      const c = kind === 'ClientIP' ? undefined : principalOf(req)?.consumer
      const id = kind === 'Credential' ? c?.credentialId : (c?.id ?? c?.credentialId)
      return id !== undefined ? `c=${id}` : `ip=${req.clientIp}`
    })
  }
  for (const h of s.headers ?? []) {
    const name = h.name
    const match = valueMatcher(h, `h:${name}=`)
    checks.push((req) => match(req.header(name)))
  }
  for (const q of s.queryParams ?? []) {
    const name = q.name
    const match = valueMatcher(q, `q:${name}=`)
    checks.push((req, query) => match(req.query === '' ? null : query().get(name)))
  }
  return (req) => {
    let params: URLSearchParams | undefined
    const query = () => (params ??= new URLSearchParams(req.query))
    let key = ''
    for (let i = 0; i < checks.length; i++) {
      const r = checks[i]!(req, query)
      if (r === false || r === undefined) return undefined
      if (r !== true) key = key === '' ? r : key + SEP + r
    }
    return key
  }
}

function valueMatcher(v: ValueSelector, label: string): (value: string | null) => string | boolean {
  if (v.type === 'Distinct') return (value) => (value === null ? false : label + value)
  const invert = v.invert
  if (v.type === 'Exact') {
    const expected = v.value ?? ''
    return (value) => (value === null ? invert : (value === expected) !== invert)
  }
  const re = new RegExp(`^(?:${v.value ?? ''})$`)
  return (value) => (value === null ? invert : re.test(value) !== invert)
}

function pathMatcher(p: PathSelector): (path: string) => boolean {
  const invert = p.invert
  if (p.type === 'Exact') return (path) => (path === p.value) !== invert
  if (p.type === 'RegularExpression') {
    const re = new RegExp(`^(?:${p.value})$`)
    return (path) => re.test(path) !== invert
  }
  const prefix = p.value.replace(/\/+$/, '')
  if (prefix === '') return () => !invert
  return (path) => (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)) !== invert
}

function cidrMatcher(cidr: string): (ip: string) => boolean {
  const slash = cidr.indexOf('/')
  const address = slash < 0 ? cidr : cidr.slice(0, slash)
  const family = isIP(address)
  const bits = slash < 0 ? (family === 4 ? 32 : 128) : Number(cidr.slice(slash + 1))
  if (bits === 0) {
    // 0.0.0.0/0 or ::/0: every address of that family
    return (ip) => isIP(ip) === family || (family === 4 && ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4)
  }
  const list = new BlockList()
  list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6')
  return (ip) => {
    const f = isIP(ip)
    if (f === 4) return list.check(ip, 'ipv4')
    if (f === 6) {
      // an IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is its IPv4 address
      if (family === 4 && ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4) return list.check(ip.slice(7), 'ipv4')
      return list.check(ip, 'ipv6')
    }
    return false
  }
}
