import type { RedirectAction } from '../../../ir/types.ts'
import type { RequestState } from '../context.ts'
import { modifyPath } from './url-rewrite.ts'

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 }

/**
 * RequestRedirect per Gateway API. Port when absent: the scheme's well-known port if a scheme
 * is given, else the listener port; the port is omitted when it is the default for the scheme
 * (80 for http, 443 for https). The query string is preserved.
 */
export function compileRedirect(action: RedirectAction, prefix: string | undefined): (state: RequestState) => Response {
  return (state) => {
    const scheme = (action.scheme ?? state.scheme).toLowerCase()
    const host = action.hostname ?? state.host
    const port = action.port ?? (action.scheme !== undefined ? (DEFAULT_PORTS[scheme] ?? state.listenerPort) : state.listenerPort)
    const portPart = DEFAULT_PORTS[scheme] === port ? '' : `:${port}`
    const path = action.path ? (modifyPath(state.originalPath, action.path, prefix) ?? state.originalPath) : state.originalPath
    return new Response(null, {
      status: action.statusCode,
      headers: { location: `${scheme}://${host}${portPart}${path}${state.query}` },
    })
  }
}
