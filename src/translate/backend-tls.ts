/**
 * BackendTLSPolicy (v1): TLS from the gateway to a Service. A valid policy gives the Service's
 * pools `tls` and protocol 'https'; an invalid one makes its backends answer 500 rather than
 * silently speak plaintext. The policy's own status lists, per Gateway that routes to the
 * Service (its "ancestors"), whether it was accepted and its references resolved.
 */
import type { BackendTls } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'
import { condition } from '../status/conditions.ts'
import type { Backends } from './backends.ts'
import { Context, generationOf, nsOf } from './context.ts'
import { isValidHostname } from './hostnames.ts'
import { COND, GATEWAY_GROUP, REASON } from './reasons.ts'
import { caBundleFromConfigMap } from './tls.ts'
import type { Condition, StatusMap } from './types.ts'
import { cmp, objs, str, timestampOf } from './util.ts'

interface PolicyResult {
  readonly policy: K8sObject
  /** "<ns>/<service>" of each target that exists. */
  readonly services: string[]
  readonly accepted: Condition
  readonly resolvedRefs: Condition
}

/**
 * Registers every policy's effect on its target Services in `backends`, and returns a
 * function that writes policy status once routes have recorded which Gateways use which Service.
 */
export function applyBackendTlsPolicies(ctx: Context, backends: Backends, status: StatusMap): () => void {
  const policies = [...ctx.view.backendTLSPolicies].sort(
    (a, b) => timestampOf(a.metadata.creationTimestamp) - timestampOf(b.metadata.creationTimestamp) || cmp(`${nsOf(a)}/${a.metadata.name}`, `${nsOf(b)}/${b.metadata.name}`),
  )
  const results: PolicyResult[] = []
  for (const policy of policies) {
    try {
      results.push(applyOne(ctx, backends, policy))
    } catch {
      // a policy we cannot read affects nothing
    }
  }
  return () => {
    for (const r of results) {
      const ancestors = new Set<string>()
      for (const s of r.services) for (const g of backends.gatewaysUsing(s)) ancestors.add(g)
      if (ancestors.size === 0) continue
      status[`BackendTLSPolicy/${nsOf(r.policy)}/${r.policy.metadata.name}`] = {
        ancestors: [...ancestors].sort().map((g) => {
          const [namespace, name] = g.split('/')
          return { ancestorRef: { group: GATEWAY_GROUP, kind: 'Gateway', namespace, name }, controllerName: ctx.opts.controllerName, conditions: [r.accepted, r.resolvedRefs] }
        }),
      }
    }
  }
}

function applyOne(ctx: Context, backends: Backends, policy: K8sObject): PolicyResult {
  const ns = nsOf(policy)
  const gen = generationOf(policy)
  const validation = policy.spec?.validation ?? {}
  const hostname = str(validation.hostname)?.toLowerCase()
  let invalid: string | undefined
  let refProblem: { reason: string; message: string } | undefined
  if (!hostname || !isValidHostname(hostname) || hostname.startsWith('*')) invalid = `validation.hostname ${hostname ?? '(none)'} is not a valid hostname`

  const caRefs = objs(validation.caCertificateRefs)
  const wellKnown = str(validation.wellKnownCACertificates)
  let caPem: string | undefined
  if (caRefs.length > 0 && wellKnown !== undefined) invalid ??= 'set either caCertificateRefs or wellKnownCACertificates, not both'
  else if (wellKnown !== undefined && wellKnown !== 'System') invalid ??= `wellKnownCACertificates ${wellKnown} is not supported`
  else if (caRefs.length === 0 && wellKnown === undefined) invalid ??= 'validation needs caCertificateRefs or wellKnownCACertificates'
  else if (caRefs.length > 0) {
    const bundles: string[] = []
    for (const ref of caRefs) {
      const group = str(ref.group) ?? ''
      const kind = str(ref.kind) ?? 'ConfigMap'
      const name = str(ref.name) ?? ''
      if (group !== '' || kind !== 'ConfigMap') {
        refProblem ??= { reason: REASON.InvalidKind, message: `caCertificateRef ${group ? `${group}/` : ''}${kind} ${name}: only ConfigMaps are supported` }
        continue
      }
      const cm = ctx.configMap(ns, name)
      const bundle = cm ? caBundleFromConfigMap(cm) : { error: 'not found' }
      if (typeof bundle !== 'string') {
        refProblem ??= { reason: REASON.InvalidCACertificateRef, message: `ConfigMap ${ns}/${name}: ${bundle.error}` }
        continue
      }
      bundles.push(bundle)
    }
    if (bundles.length) caPem = bundles.join('')
    else invalid ??= 'no valid CA certificate'
  }
  const subjectAltNames: string[] = []
  for (const san of objs(validation.subjectAltNames)) {
    const v = str(san.type) === 'URI' ? str(san.uri) : str(san.hostname)
    if (v) subjectAltNames.push(v)
  }

  const services: string[] = []
  let conflicted = false
  let targetMissing = false
  for (const t of objs(policy.spec?.targetRefs)) {
    if ((str(t.group) ?? '') !== '' || str(t.kind) !== 'Service') continue
    const name = str(t.name) ?? ''
    if (!ctx.service(ns, name)) {
      targetMissing = true
      continue
    }
    services.push(`${ns}/${name}`)
    const section = str(t.sectionName)
    const key = section ? `${ns}/${name}#${section}` : `${ns}/${name}`
    // the older policy keeps a target; a newer one for the same target is Conflicted
    if (backends.tlsBySection.has(key)) {
      conflicted = true
      continue
    }
    const effect: BackendTls | { invalid: string } = invalid ? { invalid } : caPem !== undefined ? { hostname: hostname!, caPem, subjectAltNames } : { hostname: hostname!, subjectAltNames }
    backends.tlsBySection.set(key, effect)
  }

  let accepted: Condition
  if (invalid) accepted = condition(COND.Accepted, 'False', refProblem && invalid === 'no valid CA certificate' ? REASON.NoValidCACertificate : REASON.Invalid, invalid, gen)
  else if (conflicted) accepted = condition(COND.Accepted, 'False', REASON.Conflicted, 'an older BackendTLSPolicy targets the same Service', gen)
  else if (services.length === 0 && targetMissing) accepted = condition(COND.Accepted, 'False', REASON.TargetNotFound, 'no target Service exists', gen)
  else accepted = condition(COND.Accepted, 'True', REASON.Accepted, 'Policy is accepted', gen)
  const resolvedRefs = refProblem
    ? condition(COND.ResolvedRefs, 'False', refProblem.reason, refProblem.message, gen)
    : condition(COND.ResolvedRefs, 'True', REASON.ResolvedRefs, 'All references are resolved', gen)
  return { policy, services: [...new Set(services)].sort(), accepted, resolvedRefs }
}
