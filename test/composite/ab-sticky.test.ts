/**
 * A/B testing end to end in file mode, over real sockets: sessionPersistence pins each client to
 * its variant (the backendRef), 1,000 clients keep their variant through 10 config reloads
 * (endpoints inside the variants change meanwhile), the weights hold, removing a variant
 * reassigns its clients by weight, self-selection by header or query beats the sticky choice,
 * and the request metrics are labelled per variant (backend).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'
import type { Portico } from '../../src/app.ts'

const VARIANTS = ['v1', 'v2', 'v3'] as const
type Variant = (typeof VARIANTS)[number]
const WEIGHTS: Record<Variant, number> = { v1: 50, v2: 30, v3: 20 }
const CLIENTS = 1000

/** Two endpoints per variant: each answers with its variant and its own name. */
const servers = new Map<string, Server<undefined>>()
for (const v of VARIANTS)
  for (const e of ['a', 'b']) {
    const name = `${v}${e}`
    servers.set(name, Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => Response.json({ variant: v, endpoint: name }) }))
  }
const portOf = (name: string) => servers.get(name)!.port!

const cfg = new ConfigDir()
let gw: Portico
let port = 0
let base = ''

function manifests(reload: number, variants: readonly Variant[]): string {
  const docs = [
    `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: portico
  listeners: [{ name: http, protocol: HTTP, port: ${port} }]`,
  ]
  for (const v of VARIANTS) {
    docs.push(`apiVersion: v1
kind: Service
metadata: { name: ${v}, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }`)
    // endpoints change with every reload: on odd reloads only "a" is ready
    const endpoints = reload % 2 === 1 ? ['a'] : ['a', 'b']
    endpoints.forEach((e) =>
      docs.push(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${v}-${e}, namespace: default, labels: { kubernetes.io/service-name: ${v} } }
addressType: IPv4
ports: [{ name: http, port: ${portOf(`${v}${e}`)} }]
endpoints: [{ addresses: [127.0.0.1] }]`),
    )
  }
  docs.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ab, namespace: default, generation: ${reload + 1} }
spec:
  parentRefs: [{ name: gw }]
  rules:
  # self-selection: an explicit choice wins over the sticky one (header and query matches rank first)
  - matches:
    - { path: { type: PathPrefix, value: /app }, headers: [{ name: x-variant, value: b }] }
    - { path: { type: PathPrefix, value: /app }, queryParams: [{ name: variant, value: b }] }
    backendRefs: [{ name: v2, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /app } }]
    sessionPersistence: { sessionName: ab-variant, type: Cookie }
    backendRefs:
${variants.map((v) => `    - { name: ${v}, port: 80, weight: ${WEIGHTS[v]} }`).join('\n')}
  - matches: [{ path: { type: Exact, value: /marker-${reload} } }]
    backendRefs: [{ name: v1, port: 80 }]`)
  return docs.join('\n---\n') + '\n'
}

async function reload(n: number, variants: readonly Variant[] = VARIANTS): Promise<void> {
  cfg.write('m.yaml', manifests(n, variants))
  await eventually(async () => (await fetch(`${base}/marker-${n}`).then((r) => r.status, () => 0)) === 200, 30_000, `reload ${n}`)
}

interface Client {
  cookie: string | undefined
  variant: Variant | undefined
  changed: number
}

const clients: Client[] = Array.from({ length: CLIENTS }, () => ({ cookie: undefined, variant: undefined, changed: 0 }))
/** Requests the clients made on the sticky rule, per variant (for the metrics check). */
const served: Record<Variant, number> = { v1: 0, v2: 0, v3: 0 }
const endpointsSeen = new Map<string, number>()

async function visit(c: Client, extra: { headers?: Record<string, string>; query?: string } = {}): Promise<{ variant: Variant; setCookie: boolean }> {
  const headers: Record<string, string> = { ...extra.headers }
  if (c.cookie) headers.cookie = c.cookie
  const res = await fetch(`${base}/app${extra.query ?? ''}`, { headers })
  expect(res.status).toBe(200)
  const body = (await res.json()) as { variant: Variant; endpoint: string }
  const set = res.headers.getSetCookie().find((s) => s.startsWith('ab-variant='))
  if (set) c.cookie = set.split(';')[0]!
  return { variant: body.variant, setCookie: set !== undefined }
}

/** Every client once, 50 at a time; records variant changes. */
async function round(): Promise<number> {
  let newCookies = 0
  for (let i = 0; i < CLIENTS; i += 50) {
    await Promise.all(
      clients.slice(i, i + 50).map(async (c) => {
        const { variant, setCookie } = await visit(c)
        if (setCookie) newCookies++
        if (c.variant !== undefined && c.variant !== variant) c.changed++
        c.variant = variant
        served[variant]++
      }),
    )
  }
  return newCookies
}

const share = (v: Variant) => clients.filter((c) => c.variant === v).length / CLIENTS

beforeAll(async () => {
  port = await freePort()
  base = `http://127.0.0.1:${port}`
  cfg.write('m.yaml', manifests(0, VARIANTS))
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`${base}/marker-0`).then((r) => r.status, () => 0)) === 200, 30_000, 'serving')
})

afterAll(async () => {
  await gw.stop()
  for (const s of servers.values()) await s.stop(true)
  cfg.cleanup()
})

test('1,000 clients are assigned by weight, each pinned to its variant with a cookie', async () => {
  const newCookies = await round()
  expect(newCookies).toBe(CLIENTS)
  for (const v of VARIANTS) expect(Math.abs(share(v) - WEIGHTS[v] / 100)).toBeLessThan(0.05)
  // the second visit is pinned: no new cookie, same variant
  expect(await round()).toBe(0)
  expect(clients.every((c) => c.changed === 0)).toBe(true)
}, 120_000)

test('endpoints inside a variant are still balanced', async () => {
  const counts = new Map<string, number>()
  const v1Clients = clients.filter((c) => c.variant === 'v1').slice(0, 200)
  for (const c of v1Clients) {
    const res = await fetch(`${base}/app`, { headers: { cookie: c.cookie! } })
    const body = (await res.json()) as { endpoint: string }
    counts.set(body.endpoint, (counts.get(body.endpoint) ?? 0) + 1)
    served.v1++
  }
  expect([...counts.keys()].sort()).toEqual(['v1a', 'v1b'])
  expect(counts.get('v1a')!).toBeGreaterThan(40)
  expect(counts.get('v1b')!).toBeGreaterThan(40)
}, 120_000)

test('every client keeps its variant through 10 reloads (endpoints changing meanwhile), the weights hold', async () => {
  for (let n = 1; n <= 10; n++) {
    await reload(n)
    expect(await round()).toBe(0)
  }
  expect(clients.filter((c) => c.changed > 0).length).toBe(0)
  for (const v of VARIANTS) expect(Math.abs(share(v) - WEIGHTS[v] / 100)).toBeLessThan(0.05)
}, 300_000)

test('self-selection (header or query) wins over the sticky variant', async () => {
  const pinned = clients.find((c) => c.variant === 'v1')!
  expect((await visit({ ...pinned }, { headers: { 'x-variant': 'b' } })).variant).toBe('v2')
  expect((await visit({ ...pinned }, { query: '?variant=b' })).variant).toBe('v2')
  // and does not move the client's sticky assignment
  expect((await visit({ ...pinned })).variant).toBe('v1')
  served.v1++
})

test('request metrics are labelled per variant (backendRef)', async () => {
  const text = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
  const count = (v: Variant) => {
    let n = 0
    for (const m of text.matchAll(/^portico_http_requests_total\{([^}]*)\} (\d+)$/gm))
      if (m[1]!.includes('route="default/ab"') && m[1]!.includes('rule="1"') && m[1]!.includes(`backend="default/${v}:80"`)) n += Number(m[2])
    return n
  }
  for (const v of VARIANTS) expect(count(v)).toBe(served[v])
  expect(text).toContain(`portico_http_request_duration_seconds_bucket{gateway="default/gw",listener="http",route="default/ab",rule="1",backend="default/v2:80"`)
})

test('removing a variant reassigns its clients by weight; the others stay', async () => {
  const before = clients.map((c) => c.variant)
  await reload(11, ['v1', 'v2'])
  await round()
  const moved = clients.filter((_, i) => before[i] === 'v3')
  expect(moved.length).toBeGreaterThan(100)
  expect(moved.every((c) => c.variant === 'v1' || c.variant === 'v2')).toBe(true)
  const toV1 = moved.filter((c) => c.variant === 'v1').length / moved.length
  // 50:30 → 62.5 % to v1 (a few hundred clients: a wider margin than the whole population's)
  expect(Math.abs(toV1 - 0.625)).toBeLessThan(0.12)
  expect(clients.filter((c, i) => before[i] !== 'v3' && c.variant !== before[i]).length).toBe(0)
}, 120_000)
