/**
 * Snapshots sent to workers as changes (src/dataplane/snapshot-wire.ts): what arrives equals
 * what was sent, objects the worker holds come back as the same objects (so compile() can reuse
 * its work by identity), and an encoder and decoder that disagree recover by a whole resend.
 */
import { describe, expect, test } from 'bun:test'
import { SnapshotDecoder, SnapshotEncoder, WireResyncError } from '../../src/dataplane/snapshot-wire.ts'
import { compile } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import { pool, rule, simple } from './ir.ts'

const rules = (n: number) => Array.from({ length: n }, (_, i) => rule({ match: { path: { type: 'PathPrefix', value: `/r${i}` } } }))

describe('snapshot wire', () => {
  test('a decoded snapshot equals the one encoded, first whole, then as changes', () => {
    const pools = [pool('p1', [9001, 9002])]
    const first = rules(50)
    const encoder = new SnapshotEncoder()
    const decoder = new SnapshotDecoder()
    const s1 = simple(8080, first, pools, 1)
    const whole = encoder.encode(s1)
    expect(decoder.decode(whole)).toEqual(s1)
    // one rule added, one changed, one removed; the other 48 and the pool are held
    const changed = rule({ match: { path: { type: 'Exact', value: '/changed' } } })
    const added = rule({ match: { path: { type: 'PathPrefix', value: '/new' } } })
    const next = [...first.slice(0, 10), changed, ...first.slice(11, 49), added]
    const s2 = simple(8080, next, pools, 2)
    const delta = encoder.encode(s2)
    expect(decoder.decode(delta)).toEqual(s2)
    // the change costs about what changed, not the whole table
    expect(delta.byteLength).toBeLessThan(whole.byteLength / 5)
  })

  test('held objects come back as the same objects, new ones as new', () => {
    const pools = [pool('p1', [9001])]
    const table = rules(5)
    const encoder = new SnapshotEncoder()
    const decoder = new SnapshotDecoder()
    const d1 = decoder.decode(encoder.encode(simple(8080, table, pools, 1)))
    const replacement = rule()
    const d2 = decoder.decode(encoder.encode(simple(8080, [...table.slice(0, 4), replacement], pools, 2)))
    const before = d1.http[0]!.listeners[0]!.virtualHosts[0]!.rules
    const after = d2.http[0]!.listeners[0]!.virtualHosts[0]!.rules
    for (let i = 0; i < 4; i++) expect(after[i]).toBe(before[i]!)
    expect(after[4]).not.toBe(before[4]!)
    expect(after[4]).toEqual(replacement)
    expect(d2.pools.p1).toBe(d1.pools.p1!)
  })

  test('compile() on the worker side reuses the compiled rules of held objects', () => {
    const pools = [pool('p1', [9001])]
    const table = rules(20)
    const encoder = new SnapshotEncoder()
    const decoder = new SnapshotDecoder()
    const registry = new EndpointRegistry()
    const plan1 = compile(decoder.decode(encoder.encode(simple(8080, table, pools, 1))), registry)
    const plan2 = compile(decoder.decode(encoder.encode(simple(8080, [...table, rule()], pools, 2))), registry)
    const rules1 = plan1.ports.get(8080)!.router.listeners[0]!.catchAll!.rules.rules
    const rules2 = plan2.ports.get(8080)!.router.listeners[0]!.catchAll!.rules.rules
    for (let i = 0; i < 20; i++) expect(rules2[i]).toBe(rules1[i]!)
    expect(rules2).toHaveLength(21)
  })

  test('objects dropped from a snapshot are no longer held: sent whole when they come back', () => {
    const pools = [pool('p1', [9001])]
    const [a, b] = rules(2)
    const encoder = new SnapshotEncoder()
    const decoder = new SnapshotDecoder()
    decoder.decode(encoder.encode(simple(8080, [a!, b!], pools, 1)))
    decoder.decode(encoder.encode(simple(8080, [a!], pools, 2)))
    // b comes back: the decoder dropped it, so the encoder must send it whole
    expect(decoder.decode(encoder.encode(simple(8080, [a!, b!], pools, 3)))).toEqual(simple(8080, [a!, b!], pools, 3))
  })

  test('a decoder that does not hold what the encoder thinks throws WireResyncError, and a reset encoder recovers', () => {
    const pools = [pool('p1', [9001])]
    const table = rules(3)
    const encoder = new SnapshotEncoder()
    new SnapshotDecoder().decode(encoder.encode(simple(8080, table, pools, 1)))
    // a fresh decoder (a restarted worker that got no whole snapshot)
    const fresh = new SnapshotDecoder()
    expect(() => fresh.decode(encoder.encode(simple(8080, table, pools, 2)))).toThrow(WireResyncError)
    encoder.reset()
    expect(fresh.decode(encoder.encode(simple(8080, table, pools, 3)))).toEqual(simple(8080, table, pools, 3))
  })
})
