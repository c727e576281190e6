/**
 * Which of our kinds the cluster serves, in which version, under which resource name. Gateway
 * API installs differ: GRPCRoute and BackendTLSPolicy may be absent, TLSRoute may be v1alpha2,
 * v1alpha3 or v1. Asking discovery (rather than assuming) lets us skip what is not there.
 */
import { KINDS } from '../../store/kinds.ts'
import type { KubeClient } from './client.ts'

export interface ServedResource {
  readonly kind: string
  readonly group: string
  readonly version: string
  readonly apiVersion: string
  /** Resource name in URLs, e.g. "httproutes". */
  readonly plural: string
  readonly namespaced: boolean
  readonly hasStatus: boolean
}

interface ApiResource {
  name: string
  kind: string
  namespaced: boolean
}

/** Stable before beta before alpha; within each, the higher number first (v1alpha3 before v1alpha2). */
export function versionRank(v: string): number[] {
  const m = v.match(/^v(\d+)(?:(alpha|beta)(\d+))?$/)
  if (!m) return [9, 0, 0]
  const stage = m[2] === undefined ? 0 : m[2] === 'beta' ? 1 : 2
  return [stage, -Number(m[1]), -Number(m[3] ?? 0)]
}

const compareVersions = (a: string, b: string) => {
  const [x, y] = [versionRank(a), versionRank(b)]
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return 0
}

export async function discoverResources(client: KubeClient, kinds: readonly string[] = Object.keys(KINDS)): Promise<Map<string, ServedResource>> {
  const served = new Map<string, ServedResource>()
  const groups = [...new Set(kinds.map((k) => KINDS[k]?.group).filter((g): g is string => g !== undefined))]
  for (const group of groups) {
    let versions: string[]
    if (group === '') versions = ['v1']
    else {
      try {
        const g = await client.request<{ versions?: { version: string }[] }>('GET', `/apis/${group}`)
        versions = (g.versions ?? []).map((v) => v.version)
      } catch (err) {
        if ((err as { status?: number }).status === 404) continue // the group is not installed
        throw err
      }
    }
    versions.sort(compareVersions)
    const wanted = new Set(kinds.filter((k) => KINDS[k]?.group === group))
    for (const version of versions) {
      const list = await client.request<{ resources?: ApiResource[] }>('GET', group === '' ? '/api/v1' : `/apis/${group}/${version}`).catch((err) => {
        // a single broken version (e.g. an unavailable aggregated API) must not hide the others
        if ((err as { status?: number }).status === 404 || (err as { status?: number }).status === 503) return { resources: [] }
        throw err
      })
      const resources = list.resources ?? []
      for (const r of resources) {
        if (r.name.includes('/') || !wanted.has(r.kind) || served.has(r.kind)) continue
        served.set(r.kind, {
          kind: r.kind,
          group,
          version,
          apiVersion: group ? `${group}/${version}` : version,
          plural: r.name,
          namespaced: r.namespaced,
          hasStatus: resources.some((s) => s.name === `${r.name}/status`),
        })
      }
    }
  }
  return served
}

/** The collection URL of a resource, optionally within one namespace. */
export function collectionPath(r: ServedResource, namespace?: string): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`
  return r.namespaced && namespace ? `${base}/namespaces/${namespace}/${r.plural}` : `${base}/${r.plural}`
}

/** The URL of one object (with an optional subresource such as "status"). */
export function objectPath(r: ServedResource, namespace: string | undefined, name: string, subresource?: string): string {
  const path = `${collectionPath(r, r.namespaced ? namespace ?? 'default' : undefined)}/${encodeURIComponent(name)}`
  return subresource ? `${path}/${subresource}` : path
}
