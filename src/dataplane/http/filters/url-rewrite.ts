import type { PathModifier } from '../../../ir/types.ts'
import type { RequestFilter } from './types.ts'
import { trimTrailingSlashes } from '../match.ts'

/**
 * Replace the matched PathPrefix with `replacement`, element-wise (Gateway API):
 *   prefix "/prefix/one", path "/prefix/one/three": "/one" → "/one/three", "/" → "/three".
 * `prefix` is the match value without trailing slashes ("" for "/").
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  // The rule matched, so `path` starts with `prefix` at an element boundary; guard anyway
  // (a rule-level rewrite may already have changed the path before a backend-level one).
  if (!path.startsWith(prefix)) return path
  const rest = path.slice(prefix.length)
  const result = trimTrailingSlashes(replacement) + rest
  return result === '' ? '/' : result.charCodeAt(0) === 47 ? result : `/${result}`
}

/** The new path for a PathModifier, or undefined when it cannot apply (no PathPrefix match). */
export function modifyPath(path: string, modifier: PathModifier, prefix: string | undefined): string | undefined {
  if (modifier.type === 'ReplaceFullPath') return modifier.value
  return prefix === undefined ? undefined : replacePrefix(path, prefix, modifier.value)
}

export function urlRewrite(hostname: string | undefined, path: PathModifier | undefined, prefix: string | undefined): RequestFilter {
  return (state) => {
    if (hostname !== undefined) {
      state.authority = hostname
      state.upstreamHeaders.set('host', hostname)
    }
    if (path) state.path = modifyPath(state.path, path, prefix) ?? state.path
    return undefined
  }
}
