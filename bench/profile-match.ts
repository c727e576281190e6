#!/bin/bun
/**
 * Matching cost vs route count (run on demand): one host, N HTTPRoute rules with distinct path
 * prefixes (plus N exact hostnames and N wildcard hostnames), ns per lookup for a request that
 * hits the last rule, at 10 and 5,000 routes.
 *
 *   npx bun bench/profile-match.ts
 */
import { PortRouter, RuleMatcher, type MatchInput } from '../src/dataplane/http/match.ts'
import type { HttpListener, HttpRule } from '../src/ir/types.ts'

function rule(id: string, prefix: string): HttpRule {
  return {
    id,
    owner: { kind: 'HTTPRoute', namespace: 'bench', name: id },
    filters: [],
    action: { kind: 'respond', status: 200 },
    match: { path: { type: 'PathPrefix', value: prefix }, headers: [], query: [] },
  } as HttpRule
}

function router(n: number): PortRouter<{ id: string; matcher: RuleMatcher }> {
  const listener: HttpListener = {
    id: 'gw',
    virtualHosts: [
      { hostname: 'app.example.com', rules: Array.from({ length: n }, (_, i) => rule(`r${i}`, `/svc-${i}`)) },
      ...Array.from({ length: n }, (_, i) => ({ hostname: `host-${i}.example.com`, rules: [rule(`h${i}`, '/')] })),
      ...Array.from({ length: n }, (_, i) => ({ hostname: `*.zone-${i}.example.com`, rules: [rule(`w${i}`, '/')] })),
    ],
  } as HttpListener
  return new PortRouter([listener], (r) => ({ id: r.id, matcher: new RuleMatcher(r.match) }))
}

const input = (path: string): MatchInput => ({ method: 'GET', path, headers: new Headers(), queryParam: () => undefined })

function nsPerLookup(n: number, host: string, path: string): number {
  const r = router(n)
  const req = input(path)
  for (let i = 0; i < 100_000; i++) r.route(host, req)
  const rounds = 1_000_000
  const start = Bun.nanoseconds()
  for (let i = 0; i < rounds; i++) r.route(host, req)
  return (Bun.nanoseconds() - start) / rounds
}

for (const [label, host, path] of [
  ['path prefix, last rule', 'app.example.com', (n: number) => `/svc-${n - 1}/orders/7`],
  ['exact hostname', 'host-#.example.com', () => '/'],
  ['wildcard hostname', 'a.b.zone-#.example.com', () => '/'],
] as const) {
  const small = nsPerLookup(10, host.replace('#', '9'), path(10))
  const large = nsPerLookup(5000, host.replace('#', '4999'), path(5000))
  console.log(`${label.padEnd(24)} 10 routes ${small.toFixed(0).padStart(5)} ns   5,000 routes ${large.toFixed(0).padStart(5)} ns   ratio ${(large / small).toFixed(2)}x`)
}
