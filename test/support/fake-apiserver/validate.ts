/**
 * Admission the way the real server does it for the objects Portico writes: metadata names,
 * and the Gateway API status schemas (required fields, enums, patterns, list limits, and the
 * CRD defaults the server fills in). An invalid write gets 422 Invalid, as from a real cluster,
 * so a status writer that passes here will not be rejected there.
 */

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/
const CONDITION_TYPE = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/
const CONTROLLER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/
// metav1.Time: RFC 3339 with seconds, as Go's time.Parse(RFC3339) accepts it
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
const GW = 'gateway.networking.k8s.io'
const PORTICO = 'gateway.portico.dev'

export function metadataProblems(o: any, namespaced: boolean, kind: string): string[] {
  const p: string[] = []
  const name = o?.metadata?.name
  const nameRule = kind === 'Namespace' ? DNS_LABEL : DNS_SUBDOMAIN
  if (typeof name !== 'string' || !name) p.push('metadata.name: Required value: name or generateName is required')
  else if (name.length > 253 || !nameRule.test(name)) p.push(`metadata.name: Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`)
  if (!namespaced && o?.metadata?.namespace) p.push('metadata.namespace: Forbidden: not allowed on this type')
  for (const f of ['labels', 'annotations']) {
    const v = o?.metadata?.[f]
    if (v === undefined || v === null) continue
    if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) p.push(`metadata.${f}: Invalid value: must be a map of strings`)
  }
  return p
}

/** Validates (and defaults, in place) `status` for the Gateway API kinds. */
export function statusProblems(kind: string, group: string, status: any): string[] {
  if ((group !== GW && group !== PORTICO) || status === undefined || status === null) return []
  const p: string[] = []
  if (typeof status !== 'object' || Array.isArray(status)) return ['status: Invalid value: must be an object']
  const conds = (path: string, list: unknown, { required = false, min = 0 } = {}) => {
    if (list === undefined) {
      if (required) p.push(`${path}: Required value`)
      return
    }
    if (!Array.isArray(list)) return p.push(`${path}: Invalid value: must be a list`)
    if (list.length > 8) p.push(`${path}: Too many: ${list.length}: must have at most 8 items`)
    if (list.length < min) p.push(`${path}: Invalid value: ${list.length}: should have at least ${min} items`)
    const seen = new Set<string>()
    list.forEach((c: any, i: number) => {
      const at = `${path}[${i}]`
      if (typeof c?.type !== 'string' || !CONDITION_TYPE.test(c.type) || c.type.length > 316) p.push(`${at}.type: Invalid value: ${JSON.stringify(c?.type)}`)
      else if (seen.has(c.type)) p.push(`${at}: Duplicate value: map[type:${c.type}]`)
      else seen.add(c.type)
      if (!['True', 'False', 'Unknown'].includes(c?.status)) p.push(`${at}.status: Unsupported value: ${JSON.stringify(c?.status)}: supported values: "True", "False", "Unknown"`)
      if (typeof c?.reason !== 'string' || !REASON.test(c.reason) || c.reason.length > 1024) p.push(`${at}.reason: Invalid value: ${JSON.stringify(c?.reason)}`)
      if (typeof c?.message !== 'string') p.push(`${at}.message: Required value`)
      else if (c.message.length > 32768) p.push(`${at}.message: Too long`)
      if (typeof c?.lastTransitionTime !== 'string' || !DATE_TIME.test(c.lastTransitionTime)) p.push(`${at}.lastTransitionTime: Invalid value: ${JSON.stringify(c?.lastTransitionTime)}: must be a date-time`)
      if (c?.observedGeneration !== undefined && (!Number.isInteger(c.observedGeneration) || c.observedGeneration < 0)) p.push(`${at}.observedGeneration: Invalid value: must be a non-negative integer`)
    })
  }
  const parentRef = (at: string, ref: any) => {
    if (!ref || typeof ref !== 'object') return p.push(`${at}: Required value`)
    if (typeof ref.name !== 'string' || !ref.name) p.push(`${at}.name: Required value`)
    ref.group ??= GW
    ref.kind ??= 'Gateway'
  }
  const controller = (at: string, name: unknown) => {
    if (typeof name !== 'string' || !CONTROLLER_NAME.test(name) || name.length > 253) p.push(`${at}: Invalid value: ${JSON.stringify(name)}: should match controller name pattern`)
  }
  switch (kind) {
    case 'GatewayClass':
      conds('status.conditions', status.conditions)
      break
    case 'ListenerSet':
    case 'Gateway': {
      conds('status.conditions', status.conditions)
      if (status.addresses !== undefined) {
        if (!Array.isArray(status.addresses) || status.addresses.length > 16) p.push('status.addresses: Invalid value: must be a list of at most 16')
        else status.addresses.forEach((a: any, i: number) => {
          if (typeof a?.value !== 'string' || !a.value || a.value.length > 253) p.push(`status.addresses[${i}].value: Required value`)
          else a.type ??= 'IPAddress'
        })
      }
      if (status.listeners !== undefined) {
        if (!Array.isArray(status.listeners) || status.listeners.length > 64) p.push('status.listeners: Invalid value: must be a list of at most 64')
        else status.listeners.forEach((l: any, i: number) => {
          const at = `status.listeners[${i}]`
          if (typeof l?.name !== 'string' || !l.name) p.push(`${at}.name: Required value`)
          if (!Number.isInteger(l?.attachedRoutes)) p.push(`${at}.attachedRoutes: Required value`)
          if (!Array.isArray(l?.supportedKinds)) p.push(`${at}.supportedKinds: Required value`)
          else l.supportedKinds.forEach((k: any, j: number) => {
            if (typeof k?.kind !== 'string' || !k.kind) p.push(`${at}.supportedKinds[${j}].kind: Required value`)
            else k.group ??= GW
          })
          conds(`${at}.conditions`, l?.conditions, { required: true })
        })
      }
      break
    }
    case 'HTTPRoute':
    case 'GRPCRoute':
    case 'TLSRoute':
    case 'TCPRoute':
    case 'UDPRoute':
      if (!Array.isArray(status.parents)) p.push('status.parents: Required value')
      else {
        if (status.parents.length > 32) p.push(`status.parents: Too many: ${status.parents.length}: must have at most 32 items`)
        status.parents.forEach((e: any, i: number) => {
          parentRef(`status.parents[${i}].parentRef`, e?.parentRef)
          controller(`status.parents[${i}].controllerName`, e?.controllerName)
          conds(`status.parents[${i}].conditions`, e?.conditions, { required: true, min: 1 })
        })
      }
      break
    case 'BackendTLSPolicy':
    case 'ClientTrafficPolicy':
    case 'BackendTrafficPolicy':
    case 'SecurityPolicy':
      // gateway.networking.k8s.io/v1 PolicyStatus (Envoy Gateway's policies and ours use it)
      if (!Array.isArray(status.ancestors)) p.push('status.ancestors: Required value')
      else if (status.ancestors.length > 16) p.push(`status.ancestors: Too many: ${status.ancestors.length}: must have at most 16 items`)
      else status.ancestors.forEach((e: any, i: number) => {
        parentRef(`status.ancestors[${i}].ancestorRef`, e?.ancestorRef)
        controller(`status.ancestors[${i}].controllerName`, e?.controllerName)
        conds(`status.ancestors[${i}].conditions`, e?.conditions, { required: true, min: 1 })
      })
      break
  }
  return p
}
