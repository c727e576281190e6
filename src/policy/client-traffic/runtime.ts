/**
 * Runtimes of ClientTrafficPolicy's request features (spec.ts). Both are client-phase and
 * head-only: a rule with only these keeps the front's direct path.
 */
import { isIP } from 'node:net'
import { cidrMatcher } from '../cidr.ts'
import type { PolicyRuntime, PolicyRequest, Verdict } from '../runtime.ts'
import type { ClientIpDetectionSpec, RequestIdSpec } from './spec.ts'

/**
 * `clientIPDetection`: who the client is for later policies, backend pickers and logs. The
 * forwarding headers still append the TCP peer (PolicyRequest.peerIp).
 *  - xForwardedFor.numTrustedHops N: the N-th X-Forwarded-For entry from the right (1 = the
 *    rightmost, added by our peer); fewer entries than N, or an invalid one: the peer.
 *  - xForwardedFor.trustedCIDRs: if the peer is trusted, walk X-Forwarded-For right to left
 *    skipping trusted addresses; the first untrusted one is the client (all trusted: the
 *    leftmost). An untrusted peer is the client itself.
 *  - customHeader: the header's (first) value when it is an IP address; otherwise the peer, or
 *    403 with failClosed.
 */
export const clientIpDetection: PolicyRuntime<'clientIPDetection'> = {
  name: 'clientIPDetection',
  phase: 'client',
  order: 0,
  compile(ir) {
    const detect = detector(ir.spec)
    return { headOnly: true, onRequest: detect }
  },
}

const FORBIDDEN: Verdict = { status: 403, body: 'client address not found\n' }

function detector(spec: ClientIpDetectionSpec): (req: PolicyRequest) => Verdict {
  const custom = spec.customHeader
  if (custom) {
    const name = custom.name.toLowerCase()
    const failClosed = custom.failClosed
    return (req) => {
      const value = req.header(name)
      const first = value === null ? '' : firstEntry(value)
      if (first !== '' && isIP(first) !== 0) {
        req.clientIp = first
        return undefined
      }
      return failClosed ? FORBIDDEN : undefined
    }
  }
  const xff = spec.xForwardedFor
  const cidrs = xff?.trustedCIDRs
  if (cidrs && cidrs.length > 0) {
    const trusted = cidrMatcher(cidrs)
    return (req) => {
      if (!trusted(req.peerIp)) return undefined
      const value = req.header('x-forwarded-for')
      if (value === null) return undefined
      const entries = value.split(',')
      let candidate = ''
      for (let i = entries.length - 1; i >= 0; i--) {
        const entry = entries[i]!.trim()
        if (entry === '') continue
        if (isIP(entry) === 0) return undefined
        candidate = entry
        if (!trusted(entry)) break
      }
      if (candidate !== '') req.clientIp = candidate
      return undefined
    }
  }
  const hops = xff?.numTrustedHops ?? 0
  if (hops <= 0) return () => undefined
  return (req) => {
    const value = req.header('x-forwarded-for')
    if (value === null) return undefined
    const entry = nthFromRight(value, hops)
    if (entry !== '' && isIP(entry) !== 0) req.clientIp = entry
    return undefined
  }
}

/** The n-th comma-separated entry from the right (1 = last), trimmed; "" when there are fewer. */
function nthFromRight(value: string, n: number): string {
  let end = value.length
  for (let seen = 1; ; seen++) {
    const comma = value.lastIndexOf(',', end - 1)
    if (seen === n) return value.slice(comma + 1, end).trim()
    if (comma < 0) return ''
    end = comma
  }
}

function firstEntry(value: string): string {
  const comma = value.indexOf(',')
  return (comma < 0 ? value : value.slice(0, comma)).trim()
}



/**
 * `headers.requestID`: the X-Request-Id sent upstream.
 *  - PreserveOrGenerate (the default without a policy): the client's, else a new UUID.
 *  - Preserve: the client's, never a generated one.
 *  - Generate: always a new UUID (the client's is replaced).
 *  - Disable: none (the client's is removed, none generated).
 */
export const requestId: PolicyRuntime<'requestID'> = {
  name: 'requestID',
  phase: 'client',
  order: 10,
  compile(ir) {
    return { headOnly: true, onRequest: REQUEST_ID[ir.spec.action] }
  },
}

const REQUEST_ID: Record<RequestIdSpec['action'], (req: PolicyRequest) => Verdict> = {
  PreserveOrGenerate: () => undefined,
  Preserve: (req) => {
    req.generateRequestId = false
    return undefined
  },
  Generate: (req) => {
    req.setUpstreamHeader('x-request-id', crypto.randomUUID())
    return undefined
  },
  Disable: (req) => {
    req.generateRequestId = false
    req.removeUpstreamHeader('x-request-id')
    return undefined
  },
}
