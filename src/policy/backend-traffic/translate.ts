/**
 * BackendTrafficPolicy (Envoy Gateway's api/v1alpha1/backendtrafficpolicy_types.go field names):
 * how the gateway talks to backends. Features: `proxyProtocol` (send a PROXY protocol header to
 * the backends of a TCPRoute or TLSRoute), `compression`/`compressor` (src/policy/compression/),
 * `requestBuffer` (src/policy/request-buffer/), `loadBalancer`, `healthCheck`, `circuitBreaker`, `retry` (./backend.ts: Gateway and HTTPRoute
 * targets, the first three also TCPRoute and TLSRoute, UDPRoute loadBalancer only (attach.ts
 * unsupportedOn); folded into pool variants by the data plane); every other Envoy Gateway field
 * is accepted by the schema and reported as not supported yet.
 */
import { object, string, unsupported } from '../schema.ts'
import { BACKEND_FIELDS, backendFeatures } from './backend.ts'
import { policySpecSchema } from '../targets.ts'
import type { Feature, PolicyTranslator } from '../translators.ts'
import { COMPRESSION_FIELDS, compressionFeature } from '../compression/translate.ts'
import { RATE_LIMIT_FIELDS, rateLimitFeature } from '../rate-limit/translate.ts'
import { REQUEST_BUFFER_FIELDS, requestBufferFeature } from '../request-buffer/translate.ts'

const UNSUPPORTED = [
  'admissionControl', 'bandwidthLimit', 'connection', 'dns', 'faultInjection', 'http2',
  'httpUpgrade', 'mergeType', 'responseOverride', 'routingType', 'tcpKeepalive', 'telemetry',
  'timeout', 'useClientProtocol',
] as const

const schema = policySpecSchema(['Gateway', 'HTTPRoute', 'GRPCRoute', 'TCPRoute', 'UDPRoute', 'TLSRoute'], {
  proxyProtocol: object(
    { version: string({ enum: ['V1', 'V2'], description: 'PROXY protocol version sent to the backend.' }) },
    { required: ['version'], description: 'Send a PROXY protocol header with the client address to the backend first (TCPRoute and TLSRoute targets).' },
  ),
  ...COMPRESSION_FIELDS,
  ...RATE_LIMIT_FIELDS,
  ...BACKEND_FIELDS,
  ...REQUEST_BUFFER_FIELDS,
  ...Object.fromEntries(UNSUPPORTED.map((f) => [f, unsupported()])),
})

function features(spec: Record<string, any>): Feature[] | string {
  const out: Feature[] = []
  const version = spec.proxyProtocol?.version
  if (version === 'V1' || version === 'V2') out.push({ scope: 'l4route', name: 'proxyProtocol', proxyProtocol: version })
  const compression = compressionFeature(spec)
  if (compression) out.push(compression)
  const rateLimit = rateLimitFeature(spec)
  if (typeof rateLimit === 'string') return rateLimit
  if (rateLimit) out.push(rateLimit)
  const buffer = requestBufferFeature(spec)
  if (typeof buffer === 'string') return buffer
  if (buffer) out.push(buffer)
  const backend = backendFeatures(spec)
  if (typeof backend === 'string') return backend
  out.push(...backend)
  return out
}

export const backendTrafficPolicy: PolicyTranslator = {
  kind: 'BackendTrafficPolicy',
  schema,
  targetKinds: ['Gateway', 'HTTPRoute', 'GRPCRoute', 'TCPRoute', 'TLSRoute', 'UDPRoute'],
  features,
}
