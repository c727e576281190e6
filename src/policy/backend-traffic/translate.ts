/**
 * BackendTrafficPolicy (Envoy Gateway's api/v1alpha1/backendtrafficpolicy_types.go field names):
 * how the gateway talks to backends. Registered, attached and reported now; its features arrive
 * with the issues that implement them: `proxyProtocol` (send a PROXY protocol header to the
 * backends of a TCPRoute or TLSRoute), `compression`/`compressor` (src/policy/compression/);
 * every other Envoy Gateway field is accepted by the schema and reported as not supported yet.
 */
import { object, string, unsupported } from '../schema.ts'
import { policySpecSchema } from '../targets.ts'
import type { Feature, PolicyTranslator } from '../translators.ts'
import { COMPRESSION_FIELDS, compressionFeature } from '../compression/translate.ts'

const UNSUPPORTED = [
  'admissionControl', 'bandwidthLimit', 'circuitBreaker', 'connection', 'dns', 'faultInjection', 'healthCheck', 'http2',
  'httpUpgrade', 'loadBalancer', 'mergeType', 'rateLimit', 'requestBuffer', 'responseOverride', 'retry', 'routingType', 'tcpKeepalive', 'telemetry',
  'timeout', 'useClientProtocol',
] as const

const schema = policySpecSchema(['Gateway', 'HTTPRoute', 'GRPCRoute', 'TCPRoute', 'UDPRoute', 'TLSRoute'], {
  proxyProtocol: object(
    { version: string({ enum: ['V1', 'V2'], description: 'PROXY protocol version sent to the backend.' }) },
    { required: ['version'], description: 'Send a PROXY protocol header with the client address to the backend first (TCPRoute and TLSRoute targets).' },
  ),
  ...COMPRESSION_FIELDS,
  ...Object.fromEntries(UNSUPPORTED.map((f) => [f, unsupported()])),
})

function features(spec: Record<string, any>): Feature[] {
  const out: Feature[] = []
  const version = spec.proxyProtocol?.version
  if (version === 'V1' || version === 'V2') out.push({ scope: 'l4route', name: 'proxyProtocol', proxyProtocol: version })
  const compression = compressionFeature(spec)
  if (compression) out.push(compression)
  return out
}

export const backendTrafficPolicy: PolicyTranslator = {
  kind: 'BackendTrafficPolicy',
  schema,
  targetKinds: ['Gateway', 'HTTPRoute', 'TCPRoute', 'TLSRoute', 'UDPRoute'],
  features,
}
