/**
 * Chooses the route for a TLS server name (passthrough and terminate alike).
 *
 * Precedence: an exact hostname, then the longest matching wildcard, then a route without
 * hostnames (matches any name, and connections that sent no SNI). When several routes claim the
 * same name the earlier one wins: the translator orders routes oldest first, as the Gateway API
 * conflict rules ask.
 */
export class SniTable<Route> {
  readonly #exact = new Map<string, Route>()
  /** [".example.com", route], longest suffix first. */
  readonly #wildcards: (readonly [string, Route])[] = []
  readonly #fallback: Route | undefined

  constructor(routes: readonly { readonly hostnames: readonly string[]; readonly route: Route }[]) {
    let fallback: Route | undefined
    const wildcards = new Map<string, Route>()
    for (const { hostnames, route } of routes) {
      if (hostnames.length === 0 || hostnames.includes('*')) {
        fallback ??= route
        continue
      }
      for (const raw of hostnames) {
        const hostname = raw.toLowerCase()
        if (hostname.startsWith('*.')) {
          const suffix = hostname.slice(1)
          if (!wildcards.has(suffix)) wildcards.set(suffix, route)
        } else if (!this.#exact.has(hostname)) {
          this.#exact.set(hostname, route)
        }
      }
    }
    this.#wildcards = [...wildcards].sort((a, b) => b[0].length - a[0].length)
    this.#fallback = fallback
  }

  /** `serverName` is lower-case without trailing dot, or undefined when the client sent no SNI. */
  match(serverName: string | undefined): Route | undefined {
    if (serverName === undefined) return this.#fallback
    const exact = this.#exact.get(serverName)
    if (exact !== undefined) return exact
    // "*.example.com" matches any name below example.com (one or more labels), not example.com.
    for (const [suffix, route] of this.#wildcards) {
      if (serverName.length > suffix.length && serverName.endsWith(suffix)) return route
    }
    return this.#fallback
  }
}
