/**
 * Which h2 server a port's h2 clients reach (PortPlan.servesGrpc): the node:http2 server that
 * relays gRPC trailers only where gRPC can be routed (a GRPCRoute rule, or an h2c backend behind
 * an HTTPRoute); every other port keeps h2 on the inner Bun.serve, which is cheaper per request.
 */
import { expect, test } from 'bun:test'
import { compile } from '../../src/dataplane/snapshot.ts'
import { EndpointRegistry } from '../../src/dataplane/upstream/registry.ts'
import type { BackendPool } from '../../src/ir/types.ts'
import { forwardTo, pool, rule, simple } from './ir.ts'

const servesGrpc = (rules: Parameters<typeof simple>[1], pools: BackendPool[]) => compile(simple(0, rules, pools), new EndpointRegistry()).ports.get(0)!.servesGrpc

test('an HTTPRoute to HTTP/1.1 backends: h2 stays on Bun.serve', () => {
  expect(servesGrpc([rule({ action: forwardTo('p1') })], [pool('p1', [1])])).toBe(false)
})

test('a GRPCRoute rule sends the port to the h2 server', () => {
  const grpcRule = { ...rule({ action: forwardTo('p1') }), owner: { kind: 'GRPCRoute', namespace: 'test', name: 'g' } }
  expect(servesGrpc([rule({ action: forwardTo('p1') }), grpcRule], [pool('p1', [1])])).toBe(true)
})

test('an HTTPRoute to an h2c backend (gRPC over HTTPRoute) sends the port to the h2 server', () => {
  const h2c: BackendPool = { ...pool('g1', [2]), protocol: 'h2c' }
  expect(servesGrpc([rule({ action: forwardTo('p1') }), rule({ action: forwardTo('g1') })], [pool('p1', [1]), h2c])).toBe(true)
})
