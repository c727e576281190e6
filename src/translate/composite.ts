/**
 * Composite (gateway.portico.dev/v1alpha1): a backendRef kind whose members are called together
 * and whose JSON answers are merged (aggregation), or which fans one JSON body out to several
 * services (request splitting). This file is the translation side:
 *  - COMPOSITE_SCHEMA validates the spec (file mode has no API server) and generates the CRD;
 *  - resolveComposite() turns a route's backendRef into a CompositeIr (members resolved to pools,
 *    cross-namespace members only with a ReferenceGrant from the Composite's namespace);
 *  - compositeStatuses() writes each Composite's own Accepted and ResolvedRefs conditions.
 * The runtime is src/dataplane/composite/.
 */
import type { CompositeIr, CompositeMemberIr } from '../ir/types.ts'
import { CONDITION_SCHEMA, customResourceDefinition } from '../policy/crd-builder.ts'
import { POLICY_GROUP } from '../policy/crds.ts'
import { array, boolean, duration, integer, map, object, string, toOpenApi, validate, atMostOne, type ObjectSchema } from '../policy/schema.ts'
import type { K8sObject } from '../store/kinds.ts'
import { keyOf } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import type { Backends, RefProblem } from './backends.ts'
import { generationOf, nsOf } from './context.ts'
import { parseDuration } from './duration.ts'
import { COND, GATEWAY_GROUP, REASON } from './reasons.ts'
import { isReferenceAllowed } from './reference-grant.ts'
import type { StatusMap } from './types.ts'
import { list, obj, objs, str } from './util.ts'

export const COMPOSITE_KIND = 'Composite'
/** Overall deadline when spec.timeout is not set. */
export const DEFAULT_COMPOSITE_TIMEOUT_MS = 10_000
const FIELD_PATH = '^[A-Za-z0-9_$-]+(\\.[A-Za-z0-9_$-]+)*$'
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

const backendRef = object(
  {
    group: string({ maxLength: 253, description: 'Only "" (core): members are Services.' }),
    kind: string({ maxLength: 63, description: 'Only Service.' }),
    name: string({ minLength: 1, maxLength: 253 }),
    namespace: string({ minLength: 1, maxLength: 63, description: 'Another namespace needs a ReferenceGrant there (from gateway.portico.dev Composite).' }),
    port: integer({ minimum: 1, maximum: 65535 }),
  },
  { required: ['name', 'port'] },
)

const member = object(
  {
    name: string({ minLength: 1, maxLength: 63, description: 'Label in errors, metrics and spans; default the backendRef name.' }),
    backendRef,
    path: string({ pattern: '^/', maxLength: 1024, description: 'Path and query for this member; {param} takes a pathPattern segment or a query parameter of the request ("/users/{id}", "/orders?user={id}").' }),
    method: string({ enum: METHODS, description: "Default: the client's method." }),
    timeout: duration('Own deadline inside spec.timeout.'),
    required: boolean({ description: 'true (default): failing answers 502 naming this member; false: the answer is incomplete without it.' }),
    target: string({ pattern: FIELD_PATH, description: 'Dot path to unwrap before shaping ("data").' }),
    allow: array(string({ pattern: FIELD_PATH }), { maxItems: 64, description: 'Fields kept (dot paths reach nested fields).' }),
    deny: array(string({ pattern: FIELD_PATH }), { maxItems: 64, description: 'Fields removed (dot paths).' }),
    mapping: map(string({ minLength: 1 }), { description: 'Top-level renames: {total: amount}.' }),
    group: string({ minLength: 1, maxLength: 253, description: "Nest this member's JSON under this key." }),
    requestBody: object(
      { allow: array(string({ pattern: FIELD_PATH }), { maxItems: 64, description: 'Fields of the JSON request body this member receives; empty: all of it.' }) },
      { description: "Send (part of) the client's JSON body to this member (request splitting). Absent: no body." },
    ),
  },
  { required: ['backendRef', 'path'], rules: [atMostOne(['allow', 'deny'])] },
)

export const COMPOSITE_SCHEMA: ObjectSchema = object(
  {
    timeout: duration('Deadline for all members together (default 10s).'),
    onConflict: string({ enum: ['Error', 'First', 'Last'], description: 'Two members set the same top-level key: Error (default, 502 naming the key), First or Last wins.' }),
    partialStatus: integer({ minimum: 200, maximum: 206, description: 'Status of an answer missing an optional member: 200 (default) or 206.' }),
    pathPattern: string({ pattern: '^/', maxLength: 1024, description: 'Names the segments of the request path: "/profile/{id}".' }),
    members: array(member, { minItems: 1, maxItems: 16 }),
  },
  { required: ['members'] },
)

/** A Composite's spec read once (no references resolved): problems make it unusable. */
interface ParsedComposite {
  readonly problems: readonly string[]
  readonly timeoutMs: number
  readonly onConflict: CompositeIr['onConflict']
  readonly partialStatus: 200 | 206
  readonly pathPattern?: string
  readonly members: readonly (Omit<CompositeMemberIr, 'pool' | 'invalid'> & { readonly ref: Record<string, unknown> })[]
}

const parsed = new WeakMap<K8sObject, ParsedComposite>()

function parse(c: K8sObject): ParsedComposite {
  const hit = parsed.get(c)
  if (hit) return hit
  const spec = obj(c.spec) ?? {}
  const problems = [...validate(COMPOSITE_SCHEMA, c.spec, 'spec').errors]
  const timeoutMs = parseDuration(spec.timeout) ?? DEFAULT_COMPOSITE_TIMEOUT_MS
  const partial = spec.partialStatus === undefined ? 200 : spec.partialStatus
  if (partial !== 200 && partial !== 206) problems.push('spec.partialStatus must be 200 or 206')
  const pathPattern = str(spec.pathPattern)
  const patternNames = pathPattern ? [...pathPattern.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!) : []
  const names = new Set<string>()
  const members = objs(spec.members).map((m, i) => {
    const ref = obj(m.backendRef) ?? {}
    const name = str(m.name) ?? str(ref.name) ?? `member-${i}`
    if (names.has(name)) problems.push(`spec.members[${i}]: member name ${name} is used twice (set members[].name)`)
    names.add(name)
    const path = str(m.path) ?? '/'
    for (const p of templateNames(path)) if (p === '' || !/^[A-Za-z0-9_.-]+$/.test(p)) problems.push(`spec.members[${i}].path: {${p}} is not a parameter name`)
    const out: { -readonly [K in keyof CompositeMemberIr]: CompositeMemberIr[K] } & { ref: Record<string, unknown> } = { ref, name, path, required: m.required !== false }
    const method = str(m.method)
    if (method) out.method = method
    const t = parseDuration(m.timeout)
    if (t !== undefined) {
      if (t > timeoutMs) problems.push(`spec.members[${i}].timeout must not exceed spec.timeout`)
      out.timeoutMs = t
    }
    const target = str(m.target)
    if (target) out.target = target
    const allow = strings(m.allow)
    if (allow) out.allow = allow
    const deny = strings(m.deny)
    if (deny) out.deny = deny
    const mapping = obj(m.mapping)
    if (mapping) out.mapping = Object.entries(mapping).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v] as const] : []))
    const group = str(m.group)
    if (group) out.group = group
    const body = obj(m.requestBody)
    if (body) out.requestBody = { allow: strings(body.allow) ?? [] }
    return out
  })
  if (pathPattern && new Set(patternNames).size !== patternNames.length) problems.push('spec.pathPattern names a parameter twice')
  const result: ParsedComposite = {
    problems,
    timeoutMs,
    onConflict: (str(spec.onConflict) as CompositeIr['onConflict'] | undefined) ?? 'Error',
    partialStatus: partial === 206 ? 206 : 200,
    ...(pathPattern ? { pathPattern } : {}),
    members,
  }
  parsed.set(c, result)
  return result
}

function strings(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined
  return list(v).filter((x): x is string => typeof x === 'string')
}

/** The {names} a template uses, in order. */
export function templateNames(template: string): string[] {
  return [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!)
}

/** Is this backendRef a Composite? */
export function isCompositeRef(ref: Record<string, unknown>): boolean {
  return str(ref.group) === POLICY_GROUP && str(ref.kind) === COMPOSITE_KIND
}

function findComposite(view: { readonly composites: readonly K8sObject[] }, ns: string, name: string): K8sObject | undefined {
  // a handful of Composites per cluster: a scan is cheaper than an index rebuilt per translation
  return view.composites.find((c) => c.metadata.name === name && nsOf(c) === ns)
}

export type CompositeResolution = { readonly composite: CompositeIr; readonly problems: readonly RefProblem[] } | { readonly problem: RefProblem }

/**
 * A route's Composite backendRef. The Composite must exist (same namespace, or a ReferenceGrant
 * for kind Composite) and be valid; each member resolves as a Service backendRef of the
 * Composite. A member that does not resolve keeps its place but always fails at run time
 * (required: 502 naming it), and is reported in the route's ResolvedRefs.
 */
export function resolveComposite(route: K8sObject, ref: Record<string, unknown>, backends: Backends, gateways: readonly string[], register: boolean): CompositeResolution {
  const routeNs = nsOf(route)
  const name = str(ref.name) ?? ''
  const ns = str(ref.namespace) ?? routeNs
  if (ref.port !== undefined) return { problem: { reason: REASON.UnsupportedValue, message: `backendRef to Composite ${ns}/${name} must not set a port` } }
  const view = backends.context.view
  if (!isReferenceAllowed({ group: GATEWAY_GROUP, kind: route.kind, namespace: routeNs }, { group: POLICY_GROUP, kind: COMPOSITE_KIND, namespace: ns, name }, view.referenceGrants))
    return { problem: { reason: REASON.RefNotPermitted, message: `backendRef to Composite ${ns}/${name} is not permitted by any ReferenceGrant` } }
  const c = findComposite(view, ns, name)
  if (!c) return { problem: { reason: REASON.BackendNotFound, message: `Composite ${ns}/${name} not found` } }
  const p = parse(c)
  if (p.problems.length) return { problem: { reason: REASON.BackendNotFound, message: `Composite ${ns}/${name} is invalid: ${p.problems.join('; ')}` } }
  const problems: RefProblem[] = []
  const members = p.members.map(({ ref: memberRef, ...m }): CompositeMemberIr => {
    const r = backends.resolve(c, memberRef, 'http', gateways, register, POLICY_GROUP)
    if ('problem' in r) {
      if (!r.problem.silent) problems.push({ ...r.problem, message: `Composite ${ns}/${name} member ${m.name}: ${r.problem.message}` })
      return { ...m, invalid: r.problem.message }
    }
    return { ...m, pool: r.pool }
  })
  const composite: CompositeIr = {
    id: `composite/${ns}/${name}`,
    timeoutMs: p.timeoutMs,
    onConflict: p.onConflict,
    partialStatus: p.partialStatus,
    ...(p.pathPattern ? { pathPattern: p.pathPattern } : {}),
    members,
  }
  return { composite, problems }
}

/** Accepted (the spec is valid) and ResolvedRefs (every member resolves) on each Composite. */
export function compositeStatuses(backends: Backends, status: StatusMap): void {
  for (const c of backends.context.view.composites) {
    const gen = generationOf(c)
    const p = parse(c)
    const accepted = p.problems.length
      ? condition(COND.Accepted, 'False', REASON.Invalid, p.problems.join('; '), gen)
      : condition(COND.Accepted, 'True', REASON.Accepted, 'The Composite is valid', gen)
    const refProblems: string[] = []
    let reason: string = REASON.ResolvedRefs
    for (const m of p.members) {
      const r = backends.resolve(c, m.ref, 'http', [], false, POLICY_GROUP)
      if ('problem' in r && !r.problem.silent) {
        if (refProblems.length === 0) reason = r.problem.reason
        refProblems.push(`member ${m.name}: ${r.problem.message}`)
      }
    }
    const resolved = refProblems.length
      ? condition(COND.ResolvedRefs, 'False', reason, refProblems.join('; '), gen)
      : condition(COND.ResolvedRefs, 'True', REASON.ResolvedRefs, 'All members resolve', gen)
    status[keyOf(c)] = { conditions: [accepted, resolved] }
  }
}

/** docker/deploy/00-crd-composites.yaml (test/composite/crd.test.ts keeps the file current). */
export function compositeCrd(): Record<string, unknown> {
  return customResourceDefinition({
    kind: COMPOSITE_KIND,
    plural: 'composites',
    singular: 'composite',
    shortNames: ['comp'],
    description: 'Composite: a backendRef kind (group gateway.portico.dev) that calls its members together and merges their JSON answers, or splits a JSON body between them. See README "Aggregation".',
    spec: toOpenApi(COMPOSITE_SCHEMA),
    status: {
      type: 'object',
      properties: { conditions: { type: 'array', maxItems: 8, items: CONDITION_SCHEMA, 'x-kubernetes-list-map-keys': ['type'], 'x-kubernetes-list-type': 'map' } },
    },
  })
}
