/**
 * ClientTrafficPolicy (Envoy Gateway's api/v1alpha1/clienttrafficpolicy_types.go field names):
 * how clients connect to a Gateway or one of its listeners. Features:
 *  - clientIPDetection, requestID (headers.requestID; headers.preserveXRequestID: true is the
 *    deprecated spelling of PreserveOrGenerate): request chain entries on the listener
 *  - headers.lateResponseHeaders: edits to every response of the listener port
 *    (ConnectionSettings.lateResponseHeaders, applied by the front and the pipeline)
 *  - proxyProtocol (proxyProtocol, or the deprecated enableProxyProtocol: true), connection
 *    (connection.connectionLimit.value), timeout (timeout.http.idleTimeout,
 *    timeout.http.requestReceivedTimeout, timeout.tcp.idleTimeout): the listener port's
 *    ConnectionSettings
 *  - tls (minVersion, maxVersion, ciphers, ecdhCurves, alpnProtocols): the HTTPS port's TLS
 *    settings (ConnectionSettings.tls, applied by dataplane/http/tls/contexts.ts)
 * Every other Envoy Gateway field is accepted by the schema and reported as not supported yet.
 */
import { parseDuration } from '../../translate/duration.ts'
import type { ConnectionSettings, ResponseHeaderEdits, TlsProtocolSettings } from '../kind.ts'
import { UNEDITABLE_RESPONSE_FIELDS } from './response-headers.ts'
import { array, boolean, duration, exactlyOne, atMostOne, integer, object, string, unsupported } from '../schema.ts'
import { policySpecSchema } from '../targets.ts'
import type { Feature, PolicyTranslator } from '../translators.ts'
import type { ClientIpDetectionSpec, RequestIdSpec } from './spec.ts'

const REQUEST_ID_ACTIONS = ['PreserveOrGenerate', 'Preserve', 'Generate', 'Disable'] as const
/** Envoy Gateway's TLSVersion values; Auto means the default. */
const TLS_VERSIONS = ['Auto', '1.0', '1.1', '1.2', '1.3'] as const
const NODE_TLS_VERSION: Record<string, string | undefined> = { Auto: undefined, '1.0': 'TLSv1', '1.1': 'TLSv1.1', '1.2': 'TLSv1.2', '1.3': 'TLSv1.3' }
/** The groups Bun's TLS (BoringSSL) accepts. */
const ECDH_CURVES = ['X25519', 'P-256', 'P-384', 'P-521', 'X25519MLKEM768'] as const

/** Gateway API's HTTPHeaderName and HTTPHeader (name, value). */
const HEADER_NAME = { minLength: 1, maxLength: 256, pattern: "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$" } as const
const HEADER = object(
  { name: string({ ...HEADER_NAME }), value: string({ minLength: 1, maxLength: 4096, pattern: '^[^\\x00-\\x08\\x0A-\\x1F\\x7F]*$' }) },
  { required: ['name', 'value'] },
)

const schema = policySpecSchema(['Gateway'], {
  tcpKeepalive: unsupported(),
  enableProxyProtocol: boolean({ description: 'Deprecated: use proxyProtocol. Expect a PROXY protocol header on every connection.' }),
  proxyProtocol: object(
    { optional: boolean({ description: 'Also accept connections without a PROXY protocol header (only when all traffic comes from a trusted source).' }) },
    { description: 'Expect a PROXY protocol (v1 or v2) header first on every connection; its source address is the client.' },
  ),
  clientIPDetection: object(
    {
      xForwardedFor: object(
        {
          numTrustedHops: integer({ minimum: 0, description: 'The client is this many entries from the right of X-Forwarded-For.' }),
          trustedCIDRs: array(string({ minLength: 1 }), { minItems: 1, description: 'Peers and X-Forwarded-For entries in these ranges are trusted proxies.' }),
          disableXForwardedForAppend: unsupported(),
        },
        { rules: [exactlyOne(['numTrustedHops', 'trustedCIDRs'], 'only one of numTrustedHops or trustedCIDRs must be set')] },
      ),
      customHeader: object(
        {
          name: string({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9-]+$', description: 'Header carrying the client address.' }),
          failClosed: boolean({ description: 'Answer 403 when the header is missing or not an address.' }),
        },
        { required: ['name'] },
      ),
      directSourceIP: unsupported(),
    },
    { rules: [atMostOne(['xForwardedFor', 'customHeader'], 'customHeader cannot be used in conjunction with xForwardedFor')], description: 'Where the client address comes from.' },
  ),
  tls: object(
    {
      minVersion: string({ enum: TLS_VERSIONS, description: 'Lowest TLS version accepted (default 1.2).' }),
      maxVersion: string({ enum: TLS_VERSIONS, description: 'Highest TLS version accepted (default 1.3).' }),
      ciphers: array(string({ minLength: 1, pattern: '^[A-Za-z0-9_-]+$' }), { minItems: 1, description: 'TLS 1.2 cipher suites (OpenSSL names), in server preference order. Default: ECDHE with AES-GCM or ChaCha20-Poly1305 only.' }),
      ecdhCurves: array(string({ enum: ECDH_CURVES }), { minItems: 1, description: 'Key-exchange groups, in preference order. Default: X25519, P-256, P-384.' }),
      alpnProtocols: array(string({ enum: ['h2', 'http/1.1', 'http/1.0'] }), { minItems: 1, description: 'ALPN protocols offered, in preference order. Default: h2, http/1.1.' }),
      signatureAlgorithms: unsupported(),
      session: unsupported(),
      clientValidation: unsupported(),
    },
    { description: 'TLS settings of the HTTPS listeners (the whole port: listeners sharing a port must agree).' },
  ),
  path: unsupported(),
  headers: object(
    {
      enableEnvoyHeaders: unsupported(),
      disableRateLimitHeaders: unsupported(),
      xForwardedClientCert: unsupported(),
      withUnderscoresAction: unsupported(),
      preserveXRequestID: boolean({ description: 'Deprecated: use requestID: PreserveOrGenerate.' }),
      requestID: string({ enum: REQUEST_ID_ACTIONS, description: 'X-Request-Id: PreserveOrGenerate, Preserve, Generate or Disable.' }),
      earlyRequestHeaders: unsupported(),
      lateResponseHeaders: object(
        {
          set: array(HEADER, { maxItems: 16, description: 'Fields set on every response (replacing the backend\'s of the same name).' }),
          add: array(HEADER, { maxItems: 16, description: 'Fields added to every response (after those already there).' }),
          remove: array(string({ ...HEADER_NAME }), { maxItems: 16, description: 'Fields removed from every response, e.g. Server.' }),
        },
        { description: 'Edits to every response of the listener, after all filters and policies (HTTPHeaderFilter). Framing and hop-by-hop fields cannot be edited.' },
      ),
      host: unsupported(),
      maxRequestHeaderLimit: unsupported(),
    },
    { rules: [atMostOne(['preserveXRequestID', 'requestID'], 'preserveXRequestID and requestID cannot both be set.')] },
  ),
  timeout: object({
    tcp: object({
      idleTimeout: duration('Close a TCP or TLS connection quiet in both directions this long.'),
      connectionInspectionTimeout: unsupported(),
      tlsHandshakeTimeout: unsupported(),
    }),
    http: object({
      requestReceivedTimeout: duration('The request head must arrive within this.'),
      idleTimeout: duration('Close an HTTP connection without a request in flight this long.'),
      requestHeadersReceivedTimeout: unsupported(),
      streamIdleTimeout: unsupported(),
    }),
  }),
  connection: object({
    connectionLimit: object(
      {
        value: integer({ minimum: 1, description: 'Most concurrent connections on the listener port; beyond it new ones are closed.' }),
        closeDelay: unsupported(),
        maxConnectionDuration: unsupported(),
        maxRequestsPerConnection: unsupported(),
        maxStreamDuration: unsupported(),
      },
      { required: ['value'] },
    ),
    bufferLimit: unsupported(),
    socketBufferLimit: unsupported(),
    maxAcceptPerSocketEvent: unsupported(),
  }),
  http1: unsupported(),
  http2: unsupported(),
  http3: unsupported(),
  grpc: unsupported(),
  healthCheck: unsupported(),
  scheme: unsupported(),
})

type Json = Record<string, any>

/** headers.lateResponseHeaders as edits; undefined when empty; a string when a field may not be edited. */
function responseHeaderEdits(filter: Json): ResponseHeaderEdits | undefined | string {
  const pairs = (list: unknown): [string, string][] => ((list as Json[] | undefined) ?? []).map((h) => [h.name as string, h.value as string])
  const edits: ResponseHeaderEdits = { set: pairs(filter.set), add: pairs(filter.add), remove: ((filter.remove as string[] | undefined) ?? []).map((n) => n.toLowerCase()) }
  const names = [...edits.set.map(([n]) => n.toLowerCase()), ...edits.add.map(([n]) => n.toLowerCase()), ...edits.remove]
  const framing = names.find((n) => UNEDITABLE_RESPONSE_FIELDS.has(n))
  if (framing) return `headers.lateResponseHeaders cannot edit ${framing}: framing and hop-by-hop fields belong to the proxy`
  return names.length ? edits : undefined
}

function features(spec: Json): Feature[] | string {
  const out: Feature[] = []
  const ip = spec.clientIPDetection as Json | undefined
  if (ip && (ip.xForwardedFor || ip.customHeader)) {
    const detection: { -readonly [K in keyof ClientIpDetectionSpec]: ClientIpDetectionSpec[K] } = {}
    if (ip.xForwardedFor) {
      const x = ip.xForwardedFor as Json
      detection.xForwardedFor = x.trustedCIDRs ? { trustedCIDRs: [...x.trustedCIDRs] } : { numTrustedHops: x.numTrustedHops }
    } else detection.customHeader = { name: ip.customHeader.name, failClosed: ip.customHeader.failClosed === true }
    out.push({ scope: 'request', name: 'clientIPDetection', spec: detection })
  }
  const headers = spec.headers as Json | undefined
  const action: RequestIdSpec['action'] | undefined = headers?.requestID ?? (headers?.preserveXRequestID === true ? 'PreserveOrGenerate' : undefined)
  if (action) out.push({ scope: 'request', name: 'requestID', spec: { action } })
  const late = headers?.lateResponseHeaders as Json | undefined
  if (late) {
    const edits = responseHeaderEdits(late)
    if (typeof edits === 'string') return edits
    if (edits) out.push({ scope: 'connection', name: 'lateResponseHeaders', http: { lateResponseHeaders: edits } })
  }

  // proxyProtocol takes precedence over the deprecated enableProxyProtocol (as in Envoy Gateway)
  const pp = spec.proxyProtocol as Json | undefined
  if (pp || spec.enableProxyProtocol === true) {
    const proxyProtocol = { optional: pp?.optional === true }
    out.push({ scope: 'connection', name: 'proxyProtocol', http: { proxyProtocol }, l4: { proxyProtocol } })
  }
  const tls = spec.tls as Json | undefined
  if (tls) {
    const settings: { -readonly [K in keyof TlsProtocolSettings]: TlsProtocolSettings[K] } = {}
    const min = NODE_TLS_VERSION[tls.minVersion as string]
    const max = NODE_TLS_VERSION[tls.maxVersion as string]
    if (min) settings.minVersion = min
    if (max) settings.maxVersion = max
    if (Array.isArray(tls.ciphers)) settings.ciphers = (tls.ciphers as string[]).join(':')
    if (Array.isArray(tls.ecdhCurves)) settings.ecdhCurves = (tls.ecdhCurves as string[]).join(':')
    if (Array.isArray(tls.alpnProtocols)) settings.alpnProtocols = [...(tls.alpnProtocols as string[])]
    if (Object.keys(settings).length) out.push({ scope: 'connection', name: 'tls', http: { tls: settings } })
  }
  const limit = spec.connection?.connectionLimit?.value
  if (typeof limit === 'number') out.push({ scope: 'connection', name: 'connection', http: { maxConnections: limit }, l4: { maxConnections: limit } })
  const timeout = spec.timeout as Json | undefined
  if (timeout) {
    const http: { -readonly [K in keyof ConnectionSettings]: ConnectionSettings[K] } = {}
    const l4: { -readonly [K in keyof ConnectionSettings]: ConnectionSettings[K] } = {}
    const idle = parseDuration(timeout.http?.idleTimeout)
    const received = parseDuration(timeout.http?.requestReceivedTimeout)
    const tcpIdle = parseDuration(timeout.tcp?.idleTimeout)
    if (idle !== undefined) http.idleTimeoutMs = idle
    if (received !== undefined) http.requestReceivedTimeoutMs = received
    if (tcpIdle !== undefined) l4.idleTimeoutMs = tcpIdle
    if (Object.keys(http).length || Object.keys(l4).length)
      out.push({ scope: 'connection', name: 'timeout', ...(Object.keys(http).length ? { http } : {}), ...(Object.keys(l4).length ? { l4 } : {}) })
  }
  return out
}

export const clientTrafficPolicy: PolicyTranslator = {
  kind: 'ClientTrafficPolicy',
  schema,
  targetKinds: ['Gateway'],
  features,
}
