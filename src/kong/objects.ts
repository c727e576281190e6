/**
 * KongPlugin and KongClusterPlugin objects → a plugin name and its configuration: `config`, or
 * `configFrom.secretKeyRef` (a Secret key holding JSON or YAML), then each `configPatches` entry
 * (a JSON value from a Secret key, set at a JSON-pointer path). Never throws: a problem is a string.
 */
import { parse as parseYaml } from 'yaml'
import type { K8sObject } from '../store/kinds.ts'
import { objectKey } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import { findByKey } from '../policy/translate-context.ts'
import { secretValue } from '../translate/tls.ts'
import { obj, objs, str, type Json } from '../translate/util.ts'

export interface KongPluginObject {
  /** "KongPlugin ns/name" or "KongClusterPlugin name": how status messages name it. */
  readonly label: string
  /** Store key, for identity (which routes, services and consumers name it). */
  readonly key: string
  /** The state key / metric label prefix of its features: "kongplugin/ns/name". */
  readonly id: string
  readonly plugin: string
  readonly config: Json
  readonly disabled: boolean
}

export function readPluginObject(o: K8sObject, view: ResourceView): KongPluginObject | string {
  const raw = o as unknown as Json
  const cluster = o.kind === 'KongClusterPlugin'
  const ns = o.metadata.namespace ?? ''
  const label = cluster ? `KongClusterPlugin ${o.metadata.name}` : `KongPlugin ${ns}/${o.metadata.name}`
  const plugin = str(raw.plugin)
  if (!plugin) return `${label}: plugin is required`
  let config: Json = {}
  if (raw.config !== undefined && raw.configFrom !== undefined) return `${label}: config and configFrom are mutually exclusive`
  if (raw.config !== undefined) {
    const c = obj(raw.config)
    if (!c) return `${label}: config must be an object`
    config = structuredClone(c)
  }
  const from = obj(obj(raw.configFrom)?.secretKeyRef)
  if (raw.configFrom !== undefined) {
    if (!from) return `${label}: configFrom.secretKeyRef is required`
    const v = secretText(from, cluster, ns, view)
    if (typeof v !== 'string') return `${label}: configFrom: ${v.problem}`
    const parsed = parseConfig(v)
    if (!parsed) return `${label}: configFrom: Secret value is not a JSON or YAML object`
    config = parsed
  }
  for (const [i, p] of objs(raw.configPatches).entries()) {
    const path = str(p.path)
    const ref = obj(obj(p.valueFrom)?.secretKeyRef)
    if (!path || !path.startsWith('/') || !ref) return `${label}: configPatches[${i}] needs a path ("/a/b") and valueFrom.secretKeyRef`
    const v = secretText(ref, cluster, ns, view)
    if (typeof v !== 'string') return `${label}: configPatches[${i}]: ${v.problem}`
    let value: unknown
    try {
      value = JSON.parse(v)
    } catch {
      return `${label}: configPatches[${i}]: Secret value is not JSON`
    }
    const problem = setAtPointer(config, path, value)
    if (problem) return `${label}: configPatches[${i}]: ${problem}`
  }
  return {
    label,
    key: `${o.kind}/${ns}/${o.metadata.name}`,
    id: `${o.kind.toLowerCase()}/${ns}/${o.metadata.name}`,
    plugin,
    config,
    disabled: raw.disabled === true,
  }
}

function secretText(ref: Json, cluster: boolean, ns: string, view: ResourceView): string | { problem: string } {
  const name = str(ref.name)
  const key = str(ref.key)
  // a KongClusterPlugin names the Secret's namespace; a KongPlugin reads its own namespace only
  const where = cluster ? str(ref.namespace) : ns
  if (!name || !key || !where) return { problem: cluster ? 'secretKeyRef needs name, key and namespace' : 'secretKeyRef needs name and key' }
  const secret = findByKey(view.secrets, objectKey('Secret', where, name))
  if (!secret) return { problem: `Secret ${where}/${name} not found` }
  const v = secretValue(secret, key)
  return v === undefined ? { problem: `Secret ${where}/${name} has no key ${key}` } : v
}

function parseConfig(text: string): Json | undefined {
  try {
    return obj(JSON.parse(text))
  } catch {
    try {
      return obj(parseYaml(text))
    } catch {
      return undefined
    }
  }
}

/** Sets `value` at a JSON pointer, creating objects on the way (JSON Patch "add" on objects). */
function setAtPointer(root: Json, pointer: string, value: unknown): string | undefined {
  const parts = pointer.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let at: Json = root
  for (const p of parts.slice(0, -1)) {
    if (p === '__proto__') return 'invalid path'
    const next = at[p]
    if (next === undefined) at = at[p] = {}
    else if (obj(next)) at = next as Json
    else return `path ${pointer} crosses a non-object`
  }
  const last = parts[parts.length - 1]!
  if (last === '__proto__') return 'invalid path'
  at[last] = value
  return undefined
}
