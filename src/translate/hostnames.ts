/**
 * Hostname rules from the Gateway API spec: exact names, and wildcards "*.example.com" that
 * match one or more leading labels (a suffix match: not "example.com" itself).
 */
import { cmp } from './util.ts'

const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?'
const HOSTNAME = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})*$`)

/** A valid listener/route hostname: lower-case DNS name, optional leading "*." label, not an IP. */
export function isValidHostname(h: string): boolean {
  if (h.length === 0 || h.length > 253 || !HOSTNAME.test(h)) return false
  // IP addresses are not hostnames in Gateway API
  return !/^[0-9.]+$/.test(h)
}

export const isWildcard = (h: string): boolean => h.startsWith('*.')

/** Does the pattern (exact or wildcard) match a concrete or wildcard name? */
function covers(pattern: string, name: string): boolean {
  if (!isWildcard(pattern)) return pattern === name
  const suffix = pattern.slice(1) // ".example.com"
  // "*.example.com" covers "a.example.com", "a.b.example.com" and "*.b.example.com", not "example.com"
  return name.length > suffix.length && name.endsWith(suffix)
}

/**
 * The hostnames a route may serve on a listener: the intersection of the listener's hostname
 * (undefined = any) and the route's hostnames (empty = any). Returns the more specific side of
 * each matching pair; "*" when both are unrestricted; [] when nothing intersects.
 */
export function intersectHostnames(listener: string | undefined, route: readonly string[]): string[] {
  if (route.length === 0) return [listener ?? '*']
  if (listener === undefined) return [...new Set(route)]
  const out = new Set<string>()
  for (const h of route) {
    if (covers(listener, h)) out.add(h)
    else if (covers(h, listener)) out.add(listener)
  }
  return [...out]
}

/**
 * Precedence among hostnames serving the same request: exact names first, then wildcards
 * with more characters (more specific), then "*". Ties break alphabetically for determinism.
 */
export function compareHostSpecificity(a: string | undefined, b: string | undefined): number {
  const rank = (h: string | undefined) => (h === undefined || h === '*' ? 2 : isWildcard(h) ? 1 : 0)
  const ra = rank(a)
  const rb = rank(b)
  if (ra !== rb) return ra - rb
  const la = a?.length ?? 0
  const lb = b?.length ?? 0
  if (la !== lb) return lb - la
  return cmp(a ?? '', b ?? '')
}

/** Does a request/SNI host fall under the given (listener or route) hostname? */
export function hostMatches(pattern: string | undefined, host: string): boolean {
  if (pattern === undefined || pattern === '*') return true
  return covers(pattern, host.toLowerCase())
}
