/**
 * Kong's deterministic entity ids, as KIC fills them in (go-kong `FillID`): a UUIDv5 of the
 * entity's name in a per-entity-type namespace, itself the UUIDv5 of the type's plural name in
 * Kong's namespace fd02801f-0957-4a15-a55a-c8d9606f30b5. An upstream that stored X-Consumer-ID
 * values behind Kong sees the same ids behind Portico.
 */
import { createHash } from 'node:crypto'

const KONG_ENTITIES_NAMESPACE = 'fd02801f-0957-4a15-a55a-c8d9606f30b5'

export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex')
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest()
  const b = hash.subarray(0, 16)
  b[6] = (b[6]! & 0x0f) | 0x50
  b[8] = (b[8]! & 0x3f) | 0x80
  const hex = b.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

const typeNamespaces = new Map<string, string>()

/** go-kong's id for an entity of this type (plural: "consumers") named `key` (workspace: none in KIC OSS). */
export function kongEntityId(plural: string, key: string): string {
  let ns = typeNamespaces.get(plural)
  if (!ns) typeNamespaces.set(plural, (ns = uuidV5(KONG_ENTITIES_NAMESPACE, plural)))
  return uuidV5(ns, key)
}
