import type { HeaderModifier } from '../../../ir/types.ts'
import type { RequestState } from '../context.ts'
import type { RequestFilter, ResponseFilter } from './types.ts'

interface CompiledModifier {
  readonly set: readonly (readonly [string, string])[]
  readonly add: readonly (readonly [string, string])[]
  readonly remove: readonly string[]
}

function compile(mod: HeaderModifier): CompiledModifier {
  const lower = (pairs: HeaderModifier['set']) => pairs.map(([name, value]) => [name.toLowerCase(), value] as const)
  return { set: lower(mod.set), add: lower(mod.add), remove: mod.remove.map((n) => n.toLowerCase()) }
}

/**
 * Gateway API order and semantics: set overwrites, add appends to an existing value with ","
 * ("my-header: foo" + add bar → "my-header: foo,bar", which is what the conformance suite
 * expects), remove deletes. Set-Cookie is appended as its own header line instead.
 */
function applyModifier(mod: CompiledModifier, headers: Headers): void {
  for (const [name, value] of mod.set) headers.set(name, value)
  for (const [name, value] of mod.add) {
    if (name === 'set-cookie') {
      headers.append(name, value)
      continue
    }
    const existing = headers.get(name)
    headers.set(name, existing === null ? value : `${existing},${value}`)
  }
  for (const name of mod.remove) headers.delete(name)
}

export function requestHeaderModifier(mod: HeaderModifier): RequestFilter {
  const compiled = compile(mod)
  return (state: RequestState) => {
    applyModifier(compiled, state.upstreamHeaders)
    // A modifier that sets Host changes the authority sent upstream.
    const host = state.upstreamHeaders.get('host')
    if (host !== null && host !== state.authority) state.authority = host
    return undefined
  }
}

export function responseHeaderModifier(mod: HeaderModifier): ResponseFilter {
  const compiled = compile(mod)
  return (_state, headers) => applyModifier(compiled, headers)
}
