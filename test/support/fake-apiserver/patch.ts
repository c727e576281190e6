/**
 * The patch types an API server accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902)
 * and strategic merge patch. The strategic one is an approximation good for what kubectl
 * apply sends for core types: maps merge, lists of objects merge by their merge key, and
 * `$patch`/`$setElementOrder`/`$retainKeys` directives are honoured or dropped.
 */

export class PatchError extends Error {}

const isObject = (v: unknown): v is Record<string, any> => v !== null && typeof v === 'object' && !Array.isArray(v)

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch)
  const out: Record<string, any> = isObject(target) ? { ...target } : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = mergePatch(out[k], v)
  }
  return out
}

/** Merge keys of the core lists kubectl apply touches; everything else is replaced as a whole. */
const MERGE_KEYS: Record<string, string> = {
  ports: 'port',
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  conditions: 'type',
  endpoints: 'addresses',
}

export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch)
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch
    return structuredClone(rest)
  }
  const out: Record<string, any> = isObject(target) ? { ...target } : {}
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length)
      if (Array.isArray(out[field]) && Array.isArray(v)) out[field] = out[field].filter((x: unknown) => !v.includes(x))
      continue
    }
    if (v === null) delete out[k]
    else if (Array.isArray(v) && MERGE_KEYS[k] && Array.isArray(out[k]) && v.every(isObject)) out[k] = mergeList(out[k], v, MERGE_KEYS[k]!)
    else out[k] = strategicMergePatch(out[k], v)
  }
  return out
}

function mergeList(current: any[], patch: Record<string, any>[], key: string): any[] {
  const out = [...current]
  for (const item of patch) {
    const i = out.findIndex((c) => isObject(c) && JSON.stringify(c[key]) === JSON.stringify(item[key]))
    if (item.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1)
    } else if (i >= 0) out[i] = strategicMergePatch(out[i], item)
    else out.push(strategicMergePatch(undefined, item))
  }
  return out
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('json patch must be a list of operations')
  let doc = structuredClone(target)
  for (const op of ops) {
    if (!isObject(op) || typeof op.path !== 'string') throw new PatchError('invalid json patch operation')
    const path = parsePointer(op.path)
    switch (op.op) {
      case 'add':
        doc = setAt(doc, path, structuredClone(op.value), 'add')
        break
      case 'replace':
        if (getAt(doc, path) === undefined) throw new PatchError(`replace operation does not apply: doc is missing path: ${op.path}`)
        doc = setAt(doc, path, structuredClone(op.value), 'replace')
        break
      case 'remove':
        if (getAt(doc, path) === undefined) throw new PatchError(`remove operation does not apply: doc is missing path: ${op.path}`)
        doc = removeAt(doc, path)
        break
      case 'test':
        if (JSON.stringify(getAt(doc, path)) !== JSON.stringify(op.value)) throw new PatchError(`testing value ${op.path} failed`)
        break
      default:
        throw new PatchError(`unsupported json patch operation ${JSON.stringify(op.op)}`)
    }
  }
  return doc
}

function parsePointer(p: string): string[] {
  if (p === '') return []
  if (!p.startsWith('/')) throw new PatchError(`invalid json pointer ${JSON.stringify(p)}`)
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function getAt(doc: any, path: string[]): any {
  let cur = doc
  for (const seg of path) cur = cur == null ? undefined : cur[Array.isArray(cur) ? Number(seg) : seg]
  return cur
}

function setAt(doc: any, path: string[], value: unknown, mode: 'add' | 'replace'): any {
  if (path.length === 0) return value
  const parent = getAt(doc, path.slice(0, -1))
  const last = path[path.length - 1]!
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last)
    if (mode === 'add') parent.splice(i, 0, value)
    else parent[i] = value
  } else if (isObject(parent)) parent[last] = value
  else throw new PatchError(`missing parent for path /${path.join('/')}`)
  return doc
}

function removeAt(doc: any, path: string[]): any {
  const parent = getAt(doc, path.slice(0, -1))
  const last = path[path.length - 1]!
  if (Array.isArray(parent)) parent.splice(Number(last), 1)
  else delete parent[last]
  return doc
}
