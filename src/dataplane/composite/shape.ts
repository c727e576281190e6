/**
 * JSON shaping and merging for Composite answers, pure and deterministic: the same member
 * answers always give the same bytes, whatever order they arrived in (members are merged in
 * their declared order, and keys keep the order the member sent them in).
 */
import type { CompositeMemberIr } from '../../ir/types.ts'

type JsonObject = Record<string, unknown>

const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v)

/** Defines a key, never a setter call: a member's "__proto__" key stays a key (no prototype change). */
function put(o: JsonObject, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
}

/** The value at a dot path ("data.items"), or undefined. */
export function getPath(value: unknown, path: string): unknown {
  let at = value
  for (const part of path.split('.')) {
    if (!isObject(at) || !Object.hasOwn(at, part)) return undefined
    at = at[part]
  }
  return at
}

/** Copies the listed dot paths (in the listed order) into a new object; missing ones are skipped. */
export function allowFields(value: JsonObject, paths: readonly string[]): JsonObject {
  const out: JsonObject = {}
  for (const path of paths) {
    const v = getPath(value, path)
    if (v === undefined) continue
    const parts = path.split('.')
    let at = out
    for (let i = 0; i < parts.length - 1; i++) {
      const next = at[parts[i]!]
      if (!isObject(next)) put(at, parts[i]!, {})
      at = at[parts[i]!] as JsonObject
    }
    put(at, parts[parts.length - 1]!, v)
  }
  return out
}

/** A copy without the listed dot paths (objects along a path are copied, not mutated). */
export function denyFields(value: JsonObject, paths: readonly string[]): JsonObject {
  const out: JsonObject = { ...value }
  for (const path of paths) {
    const parts = path.split('.')
    let at = out
    let ok = true
    for (let i = 0; i < parts.length - 1; i++) {
      const next = at[parts[i]!]
      if (!isObject(next)) {
        ok = false
        break
      }
      const copy = { ...next }
      put(at, parts[i]!, copy)
      at = copy
    }
    if (ok) delete at[parts[parts.length - 1]!]
  }
  return out
}

/** Top-level renames; a renamed key keeps its place. */
export function renameFields(value: JsonObject, mapping: readonly (readonly [string, string])[]): JsonObject {
  const to = new Map(mapping)
  const out: JsonObject = {}
  for (const [k, v] of Object.entries(value)) put(out, to.get(k) ?? k, v)
  return out
}

function shapeOne(value: unknown, m: CompositeMemberIr): unknown {
  if (!isObject(value)) return value
  let v = value
  if (m.allow) v = allowFields(v, m.allow)
  if (m.deny) v = denyFields(v, m.deny)
  if (m.mapping) v = renameFields(v, m.mapping)
  return v
}

/**
 * One member's answer, shaped: `target` unwrapped, then allow/deny/mapping (applied to each
 * element of a list), then nested under `group`. What is not an object by then is nested under
 * the member's name (a merge needs keys).
 */
export function shapeMember(body: unknown, m: CompositeMemberIr): JsonObject {
  let v = m.target ? (getPath(body, m.target) ?? null) : body
  v = Array.isArray(v) ? v.map((x) => shapeOne(x, m)) : shapeOne(v, m)
  if (m.group) return { [m.group]: v }
  return isObject(v) ? v : { [m.name]: v }
}

export type MergeResult = { readonly body: JsonObject } | { readonly conflict: string; readonly members: readonly [string, string] }

/** Merges shaped answers in the given (declared) order; a key set twice is resolved per onConflict. */
export function mergeMembers(parts: readonly (readonly [member: string, value: JsonObject])[], onConflict: 'Error' | 'First' | 'Last'): MergeResult {
  const body: JsonObject = {}
  const owner = new Map<string, string>()
  for (const [member, value] of parts) {
    for (const [k, v] of Object.entries(value)) {
      const first = owner.get(k)
      if (first === undefined) {
        owner.set(k, member)
        put(body, k, v)
        continue
      }
      if (onConflict === 'Error') return { conflict: k, members: [first, member] }
      if (onConflict === 'Last') {
        owner.set(k, member)
        put(body, k, v)
      }
    }
  }
  return { body }
}

/** The part of a JSON request body a member receives: the listed dot paths, or all of it. */
export function bodyFor(body: JsonObject, allow: readonly string[]): JsonObject {
  return allow.length === 0 ? body : allowFields(body, allow)
}

export { isObject }
