/** The chain compile: precedence, phase order, per-listener plans and the direct decision. */
import { describe, expect, test } from 'bun:test'
import { compile, type Plan, type RoutePlan } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import type { PolicyIr } from '../../src/policy/kind.ts'
import { listener, pool, port, rule, snapshot, vhost } from '../dataplane/ir.ts'

const requestId = (action: 'Generate' | 'Disable', id: string): PolicyIr => ({ name: 'requestID', id, spec: { action } }) as PolicyIr
const clientIp: PolicyIr = { name: 'clientIPDetection', id: 'ctp/ns/ip#clientIPDetection', spec: { xForwardedFor: { numTrustedHops: 1 } } } as PolicyIr

function rulesOf(plan: Plan, listenerIndex: number): readonly RoutePlan[] {
  return plan.ports.get(0)!.router.listeners[listenerIndex]!.catchAll!.rules.rules
}

describe('chain compile', () => {
  test('one rule object under two listeners gets a plan per listener policy set; a rule entry beats the listener entry of its name', () => {
    const shared = rule({ policies: [requestId('Disable', 'route#requestID')] })
    const plain = rule({ match: { path: { type: 'PathPrefix', value: '/plain' } } })
    const a = { ...listener([vhost('*', [shared, plain])], 'a.test'), policies: [requestId('Generate', 'gw#requestID'), clientIp] }
    const b = listener([vhost('*', [shared, plain])], 'b.test')
    const plan = compile(snapshot([port(0, [a, b])], [pool('p1', [1])]), new EndpointRegistry())
    const [aShared, aPlain] = rulesOf(plan, 0)
    const [bShared, bPlain] = rulesOf(plan, 1)
    expect(aShared).not.toBe(bShared)
    expect(aShared!.chain.entries.map((e) => e.id)).toEqual(['ctp/ns/ip#clientIPDetection', 'route#requestID'])
    expect(bShared!.chain.entries.map((e) => e.id)).toEqual(['route#requestID'])
    // clientIPDetection (order 0) runs before requestID (order 10), both in the client phase.
    expect(aPlain!.chain.entries.map((e) => e.id)).toEqual(['ctp/ns/ip#clientIPDetection', 'gw#requestID'])
    expect(bPlain!.chain.entries).toEqual([])
    // Head-only policies keep every one of them on the front's direct path.
    for (const r of [aShared, aPlain, bShared, bPlain]) expect(r!.direct).toBe(true)
  })

  test('sorted by phase, then runtime order, then manifest order; filters take the rule off the direct path', () => {
    const r = rule({
      policies: [requestId('Generate', 'r#requestID'), clientIp],
      filters: [
        { type: 'ResponseHeaderModifier', set: [['x-a', '1']], add: [], remove: [] },
        { type: 'RequestHeaderModifier', set: [['x-b', '2']], add: [], remove: [] },
      ],
    })
    const plan = compile(snapshot([port(0, [listener([vhost('*', [r])])])], [pool('p1', [1])]), new EndpointRegistry())
    const compiled = rulesOf(plan, 0)[0]!
    expect(compiled.chain.entries.map((e) => `${e.phase}:${e.name}`)).toEqual(['client:clientIPDetection', 'client:requestID', 'transform:ResponseHeaderModifier', 'transform:RequestHeaderModifier'])
    expect(compiled.requestFilters.length).toBe(3)
    expect(compiled.responseFilters.length).toBe(1)
    expect(compiled.direct).toBe(false)
  })

  test('unchanged rules are reused by identity across compiles (listener policies compared by content)', () => {
    const registry = new EndpointRegistry()
    const r = rule()
    const p1 = pool('p1', [1])
    const build = () => snapshot([port(0, [{ ...listener([vhost('*', [r])]), policies: [requestId('Generate', 'gw#requestID')] }])], [p1])
    const first = rulesOf(compile(build(), registry), 0)[0]
    const second = rulesOf(compile(build(), registry), 0)[0]
    expect(second).toBe(first)
  })
})
