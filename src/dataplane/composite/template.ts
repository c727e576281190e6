/**
 * Member path templates: "{name}" takes a segment the Composite's pathPattern names in the
 * request path ("/profile/{id}"), else the request's query parameter of that name. Values are
 * percent-encoded when put in, so a parameter can never add a segment ("../admin") or a query.
 */

/** Parameters the request path gives, by the pattern's names; segments after the pattern are ignored. */
export function pathParams(pattern: string | undefined, path: string): Map<string, string> {
  const out = new Map<string, string>()
  if (!pattern) return out
  const want = pattern.split('/')
  const got = path.split('/')
  if (got.length < want.length) return out
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!
    const g = got[i]!
    if (w.startsWith('{') && w.endsWith('}')) {
      if (g === '') return new Map()
      try {
        out.set(w.slice(1, -1), decodeURIComponent(g))
      } catch {
        return new Map()
      }
    } else if (w !== g) return new Map()
  }
  return out
}

export type Expanded = { readonly path: string; readonly query: string } | { readonly missing: string }

/** The member's path and query ("?..." or "") with parameters filled in. */
export function expand(template: string, lookup: (name: string) => string | undefined): Expanded {
  let missing: string | undefined
  const filled = template.replace(/\{([^}]*)\}/g, (_, name: string) => {
    const v = lookup(name)
    if (v === undefined) {
      missing ??= name
      return ''
    }
    return encodeURIComponent(v)
  })
  if (missing !== undefined) return { missing }
  const q = filled.indexOf('?')
  return q < 0 ? { path: filled, query: '' } : { path: filled.slice(0, q), query: filled.slice(q) }
}
