/**
 * One policy object as attachment sees it (an Entry): read, validated and translated into
 * features once, with its targets and the backend effects of the Services it calls. Entries are
 * immutable; attach.ts keeps one per policy object and replaces it only when the object (or what
 * its translation read) changed.
 */
import type { PolicyKind } from './crds.ts'
import { validate } from './schema.ts'
import { targetRefsOf, type TargetRef } from './targets.ts'
import { TRANSLATORS, type Feature } from './translators.ts'
import { translateContext, type ContextReads } from './translate-context.ts'
import type { BackendEffect, Backends } from '../translate/backends.ts'
import type { K8sObject } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'

export interface Entry {
  readonly policy: K8sObject
  readonly kind: PolicyKind
  readonly namespace: string
  readonly name: string
  readonly created: number
  readonly generation?: number
  /** Why the policy is not accepted anywhere (schema errors, unsupported fields). */
  readonly invalid?: string
  readonly features: readonly Feature[]
  readonly targets: readonly TargetRef[]
  /** Pools the policy calls (ext-auth Services), as recorded while translating it. */
  readonly effects: readonly BackendEffect[]
  /** What the translation read besides the spec (Secrets, ConfigMaps, grants, Services). */
  readonly reads: ContextReads
}

const timestamp = (v: unknown) => {
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t
}
export const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
export const who = (e: Entry) => `${e.kind} ${e.namespace}/${e.name}`
/** The key of the policy's status ("Kind/ns/name"). */
export const statusKeyOf = (e: Entry) => `${e.kind}/${e.namespace}/${e.name}`
/** Precedence between policies: the oldest first, then by namespace/name, then kind (GEP-713). */
export const entryOrder = (a: Entry, b: Entry) => a.created - b.created || cmp(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`) || cmp(a.kind, b.kind)

const NO_EFFECTS: readonly BackendEffect[] = Object.freeze([])
const NO_READS: ContextReads = Object.freeze({ objects: [], grants: undefined, services: false })

/** Reads, validates and translates one policy object. Never throws. */
export function entryOf(kind: PolicyKind, policy: K8sObject, view: ResourceView, backends: Backends | undefined): Entry {
  let entry = translateEntry(kind, policy, view, backends)
  // most policies read nothing besides their spec: share the empty records (one per route adds up)
  if (entry.effects.length === 0 && entry.reads.objects.length === 0 && !entry.reads.grants && !entry.reads.services) entry = { ...entry, effects: NO_EFFECTS, reads: NO_READS }
  if (!entry.invalid || !TRANSLATORS[kind].failClosed) return entry
  // fail closed: the policy's targets answer 500 (its status says why)
  const spec = { policy: `${kind} ${entry.namespace}/${entry.name}` }
  return { ...entry, features: [{ scope: 'request', name: 'policyRejected', spec }] }
}

function translateEntry(kind: PolicyKind, policy: K8sObject, view: ResourceView, backends: Backends | undefined): Entry {
  const namespace = policy.metadata.namespace ?? 'default'
  const effects: BackendEffect[] = []
  const reads: ContextReads = { objects: [], grants: undefined, services: false }
  const base = {
    policy,
    kind,
    namespace,
    name: policy.metadata.name,
    created: timestamp(policy.metadata.creationTimestamp),
    ...(typeof policy.metadata.generation === 'number' ? { generation: policy.metadata.generation } : {}),
    effects,
    reads,
  }
  const spec = policy.spec
  const targets = spec && typeof spec === 'object' && !Array.isArray(spec) ? targetRefsOf(spec) : []
  const t = TRANSLATORS[kind]
  try {
    if (spec === undefined || spec === null) return { ...base, targets, features: [], invalid: 'spec is required' }
    const problems = validate(t.schema, spec, 'spec')
    const reasons = [...problems.errors, ...problems.unsupported.map((p) => `${p} is not supported yet`)]
    if (reasons.length) return { ...base, targets, features: [], invalid: reasons.join('; ') }
    const features = t.features(spec, translateContext(view, kind, namespace, backends, effects, reads))
    if (typeof features === 'string') return { ...base, targets, features: [], invalid: features }
    return { ...base, targets, features }
  } catch (e) {
    return { ...base, targets, features: [], invalid: `internal error translating this policy: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** Request features that also configure the backends of L4 routes (TCPRoute, TLSRoute; UDPRoute: loadBalancer). */
export const L4_FEATURES = ['loadBalancer', 'healthCheck', 'circuitBreaker'] as const

/** Why a feature cannot apply through a target of this kind (undefined: it can). */
export function unsupportedOn(f: Feature, targetKind: string): string | undefined {
  if (f.scope === 'l4route') return targetKind === 'TCPRoute' || targetKind === 'TLSRoute' ? undefined : `${f.name} applies to TCPRoute and TLSRoute targets only`
  if (f.scope === 'connection') return targetKind === 'Gateway' ? undefined : `${f.name} applies to Gateway targets only`
  // a gRPC call is an HTTP/2 request: every request feature applies to GRPCRoute as to HTTPRoute
  if (targetKind === 'Gateway' || targetKind === 'HTTPRoute' || targetKind === 'GRPCRoute') return undefined
  // BackendTrafficPolicy backend features reach the pools of TCPRoute and TLSRoute rules too
  // (UDPRoute: load balancing only); everything else acts on HTTP requests.
  if (targetKind === 'TCPRoute' || targetKind === 'TLSRoute') return (L4_FEATURES as readonly string[]).includes(f.name) ? undefined : `${f.name} acts on HTTP requests only: it applies to Gateway and HTTPRoute targets, not to ${targetKind}`
  if (targetKind === 'UDPRoute' && f.name !== 'loadBalancer' && (L4_FEATURES as readonly string[]).includes(f.name)) return `${f.name} is not supported for UDPRoute yet`
  return targetKind === 'UDPRoute' && f.name === 'loadBalancer' ? undefined : `${f.name} acts on HTTP requests only: it applies to Gateway and HTTPRoute targets, not to ${targetKind}`
}

/** Why a feature cannot apply, as status says it ("yet" unless the message says it is for good or for now). */
export const misfitMessage = (m: string) => (/ yet\b|HTTP requests only/.test(m) ? m : `${m} (not supported yet)`)
