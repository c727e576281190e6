/**
 * ClientTrafficPolicy's request features (clientIPDetection, requestID): their semantics on the
 * PolicyRequest view, then the shared contract (policy.case.ts) on both HTTP paths.
 */
import { describe, expect, test } from 'bun:test'
import { clientIpDetection, requestId } from '../../src/policy/client-traffic/runtime.ts'
import type { ClientIpDetectionSpec } from '../../src/policy/client-traffic/spec.ts'
import { PolicyStateRegistry } from '../../src/dataplane/policy-state.ts'
import { runPolicyCase, strictRequest, type PathResult } from './policy.case.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const CTX = { pools: new Map(), state: new PolicyStateRegistry(), prefix: undefined }

function detect(spec: ClientIpDetectionSpec, headers: Record<string, string>, peer = '127.0.0.1'): { ip: string; status: number | undefined } {
  const policy = clientIpDetection.compile({ name: 'clientIPDetection', id: 'x', spec }, CTX)
  const req = strictRequest(headers)
  ;(req as { peerIp: string }).peerIp = peer
  req.clientIp = peer
  const verdict = policy.onRequest!(req)
  return { ip: req.clientIp, status: verdict instanceof Promise ? -1 : verdict?.status }
}

describe('clientIPDetection semantics', () => {
  test('numTrustedHops counts X-Forwarded-For entries from the right (1 = the rightmost)', () => {
    const xff = { 'x-forwarded-for': '203.0.113.1, 198.51.100.2,10.0.0.3' }
    expect(detect({ xForwardedFor: { numTrustedHops: 1 } }, xff).ip).toBe('10.0.0.3')
    expect(detect({ xForwardedFor: { numTrustedHops: 2 } }, xff).ip).toBe('198.51.100.2')
    expect(detect({ xForwardedFor: { numTrustedHops: 3 } }, xff).ip).toBe('203.0.113.1')
    // Fewer entries than hops, no header, an invalid entry: the peer.
    expect(detect({ xForwardedFor: { numTrustedHops: 4 } }, xff).ip).toBe('127.0.0.1')
    expect(detect({ xForwardedFor: { numTrustedHops: 1 } }, {}).ip).toBe('127.0.0.1')
    expect(detect({ xForwardedFor: { numTrustedHops: 1 } }, { 'x-forwarded-for': 'unknown' }).ip).toBe('127.0.0.1')
    expect(detect({ xForwardedFor: { numTrustedHops: 1 } }, { 'x-forwarded-for': '2001:db8::7' }).ip).toBe('2001:db8::7')
    expect(detect({ xForwardedFor: {} }, xff).ip).toBe('127.0.0.1')
  })

  test('trustedCIDRs: walk right to left past trusted addresses, only when the peer is trusted', () => {
    const spec = { xForwardedFor: { trustedCIDRs: ['10.0.0.0/8', '127.0.0.1/32', 'fd00::/8'] } }
    expect(detect(spec, { 'x-forwarded-for': '203.0.113.9, 198.51.100.4, 10.1.2.3' }).ip).toBe('198.51.100.4')
    expect(detect(spec, { 'x-forwarded-for': '203.0.113.9, 10.9.9.9, fd00::1' }).ip).toBe('203.0.113.9')
    // Every entry trusted: the leftmost.
    expect(detect(spec, { 'x-forwarded-for': '10.0.0.1, 10.0.0.2' }).ip).toBe('10.0.0.1')
    // An untrusted peer is the client, whatever it claims.
    expect(detect(spec, { 'x-forwarded-for': '203.0.113.9' }, '192.0.2.50').ip).toBe('192.0.2.50')
    // IPv4-mapped peers count as IPv4.
    expect(detect(spec, { 'x-forwarded-for': '203.0.113.9' }, '::ffff:127.0.0.1').ip).toBe('203.0.113.9')
  })

  test('customHeader: a valid address, else the peer or 403 with failClosed', () => {
    expect(detect({ customHeader: { name: 'X-Real-IP', failClosed: false } }, { 'x-real-ip': '192.0.2.7' })).toEqual({ ip: '192.0.2.7', status: undefined })
    expect(detect({ customHeader: { name: 'X-Real-IP', failClosed: false } }, { 'x-real-ip': 'nope' })).toEqual({ ip: '127.0.0.1', status: undefined })
    expect(detect({ customHeader: { name: 'X-Real-IP', failClosed: true } }, {})).toEqual({ ip: '127.0.0.1', status: 403 })
    expect(detect({ customHeader: { name: 'X-Real-IP', failClosed: true } }, { 'x-real-ip': '192.0.2.7, 10.0.0.1' })).toEqual({ ip: '192.0.2.7', status: undefined })
  })
})

describe('requestID semantics', () => {
  const run = (action: 'PreserveOrGenerate' | 'Preserve' | 'Generate' | 'Disable', headers: Record<string, string>) => {
    const req = strictRequest(headers)
    requestId.compile({ name: 'requestID', id: 'x', spec: { action } }, CTX).onRequest!(req)
    return { id: req.requestId, generate: req.generateRequestId }
  }
  test('each action', () => {
    expect(run('PreserveOrGenerate', { 'x-request-id': 'abc' })).toEqual({ id: 'abc', generate: true })
    expect(run('Preserve', {})).toEqual({ id: undefined, generate: false })
    expect(run('Generate', { 'x-request-id': 'abc' }).id).toMatch(UUID)
    expect(run('Disable', { 'x-request-id': 'abc' })).toEqual({ id: undefined, generate: false })
  })
})

// ---------------------------------------------------------------- the shared contract, both paths

const xffSeen = (r: PathResult) => r.upstream?.headers['x-forwarded-for']
const hashedTo: Record<string, string[]> = {}

runPolicyCase({
  name: 'clientIPDetection',
  variants: [
    {
      label: 'numTrustedHops 1, consistent hashing on the client IP',
      spec: { xForwardedFor: { numTrustedHops: 1 } },
      lb: { type: 'ConsistentHash', source: 'ClientIP' },
      requests: [
        ...Array.from({ length: 12 }, (_, i) => ({
          name: `client 203.0.113.${i} is what the picker hashes; the peer is still appended`,
          headers: { 'x-forwarded-for': `203.0.113.${i}` },
          expect: (r: PathResult) => {
            expect(r.status).toBe(200)
            expect(xffSeen(r)).toBe(`203.0.113.${i}, 127.0.0.1`)
            ;(hashedTo[`203.0.113.${i}`] ??= []).push(r.body)
          },
        })),
        { name: 'no X-Forwarded-For: the peer', expect: (r: PathResult) => expect(xffSeen(r)).toBe('127.0.0.1') },
      ],
    },
    {
      label: 'customHeader X-Real-IP, failClosed',
      spec: { customHeader: { name: 'X-Real-IP', failClosed: true } },
      requests: [
        { name: 'a valid address passes', headers: { 'x-real-ip': '192.0.2.1' }, expect: (r: PathResult) => expect(r.status).toBe(200) },
        {
          name: 'missing: 403 from the gateway',
          expect: (r: PathResult) => {
            expect(r.status).toBe(403)
            expect(r.upstream).toBeUndefined()
          },
        },
        { name: 'invalid: 403', headers: { 'x-real-ip': 'localhost' }, expect: (r: PathResult) => expect(r.status).toBe(403) },
        { name: 'a POST with a body is refused too', method: 'POST', expect: (r: PathResult) => expect(r.status).toBe(403) },
      ],
    },
    {
      label: 'trustedCIDRs',
      spec: { xForwardedFor: { trustedCIDRs: ['127.0.0.0/8', '10.0.0.0/8'] } },
      lb: { type: 'ConsistentHash', source: 'ClientIP' },
      requests: [
        { name: 'trusted hops skipped', headers: { 'x-forwarded-for': '198.51.100.1, 10.1.1.1' }, expect: (r: PathResult) => expect(xffSeen(r)).toBe('198.51.100.1, 10.1.1.1, 127.0.0.1') },
      ],
    },
  ],
})

describe('clientIPDetection reaches the backend picker', () => {
  test('different detected clients spread over both endpoints, each always to the same one on both paths', () => {
    const choices = Object.values(hashedTo)
    expect(choices.length).toBe(12)
    for (const c of choices) expect(new Set(c).size).toBe(1)
    expect(new Set(choices.map((c) => c[0])).size).toBe(2)
  })
})

const idSeen = (r: PathResult) => r.upstream?.headers['x-request-id']

runPolicyCase({
  name: 'requestID',
  variants: [
    {
      label: 'PreserveOrGenerate',
      spec: { action: 'PreserveOrGenerate' },
      requests: [
        { name: "the client's id is kept", headers: { 'x-request-id': 'client-1' }, expect: (r: PathResult) => expect(idSeen(r)).toBe('client-1') },
        { name: 'none: one is generated', expect: (r: PathResult) => expect(idSeen(r)).toMatch(UUID) },
      ],
    },
    {
      label: 'Preserve',
      spec: { action: 'Preserve' },
      requests: [
        { name: "the client's id is kept", headers: { 'x-request-id': 'client-1' }, expect: (r: PathResult) => expect(idSeen(r)).toBe('client-1') },
        { name: 'none: none generated', expect: (r: PathResult) => expect(idSeen(r)).toBeUndefined() },
      ],
    },
    {
      label: 'Generate',
      spec: { action: 'Generate' },
      requests: [
        {
          name: "the client's id is replaced",
          headers: { 'x-request-id': 'client-1' },
          expect: (r: PathResult) => {
            expect(idSeen(r)).toMatch(UUID)
            expect(r.upstream!.headers['x-forwarded-for']).toBe('127.0.0.1')
          },
        },
        { name: 'none: one is generated', expect: (r: PathResult) => expect(idSeen(r)).toMatch(UUID) },
      ],
    },
    {
      label: 'Disable',
      spec: { action: 'Disable' },
      requests: [
        { name: "the client's id is removed", headers: { 'x-request-id': 'client-1' }, expect: (r: PathResult) => expect(idSeen(r)).toBeUndefined() },
        { name: 'none: none generated', expect: (r: PathResult) => expect(idSeen(r)).toBeUndefined() },
      ],
    },
  ],
})
