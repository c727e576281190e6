/**
 * Composite backendRefs end to end in file mode, over real sockets: three-member aggregation
 * (a slow optional member timing out, a required member failing), key conflicts per rule,
 * splitting a POST body, deterministic output over 100 runs, status on the Composite and the
 * route, and the member metrics.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { baseManifests, ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'
import type { Portico } from '../../src/app.ts'

/** One backend Service: a Bun.serve on port 0 answering with `handler`, recording what it got. */
class Service {
  readonly seen: { method: string; path: string; body: string; headers: Headers }[] = []
  readonly server: Server<undefined>
  constructor(handler: (req: Request, url: URL, body: string) => Response | Promise<Response>) {
    this.server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: async (req) => {
        const url = new URL(req.url)
        const body = req.body ? await req.text() : ''
        this.seen.push({ method: req.method, path: url.pathname + url.search, body, headers: req.headers })
        return handler(req, url, body)
      },
    })
  }
  get port(): number {
    return this.server.port!
  }
}

const jitter = () => Bun.sleep(Math.floor(Math.random() * 15))

const users = new Service(async (_req, url, body) => {
  await jitter()
  if (url.pathname === '/users/fail') return new Response('db down at 10.0.0.7', { status: 500 })
  if (url.pathname === '/users' && body) return Response.json({ created: JSON.parse(body) })
  const id = decodeURIComponent(url.pathname.split('/')[2] ?? '')
  return Response.json({ id, name: 'Ada', email: 'ada@example.com', passwordHash: 'x' })
})
const orders = new Service(async (_req, url) => {
  await jitter()
  return Response.json({
    data: [
      { id: 1, total: 10, status: 'paid', internal: 'a', user: url.searchParams.get('user') },
      { id: 2, total: 25, status: 'open', internal: 'b', user: url.searchParams.get('user') },
    ],
  })
})
/** The slow member never answers until the tests end: only its deadline (or cancellation) can finish a request. */
let release: () => void = () => {}
const never = new Promise<void>((resolve) => (release = resolve))
const recs = new Service(async (_req, url) => {
  if (url.pathname === '/slow') await never
  if (url.pathname === '/text') return new Response('<html>not json</html>', { headers: { 'content-type': 'text/html' } })
  return Response.json({ items: ['a', 'b'] })
})
const billing = new Service(async (req, _url, body) => {
  await jitter()
  return Response.json({ billing: { method: req.method, got: body ? JSON.parse(body) : null } })
})
const a = new Service(() => Response.json({ name: 'from-a', a: 1 }))
const b = new Service(() => Response.json({ name: 'from-b', b: 2 }))

const cfg = new ConfigDir()
let gw: Portico
let port = 0
let base = ''

function composite(name: string, spec: string): string {
  return `apiVersion: gateway.portico.dev/v1alpha1
kind: Composite
metadata: { name: ${name}, namespace: default, generation: 1 }
spec:
${spec}`
}

function compositeRoute(name: string, prefix: string, target: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default, generation: 1 }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]
      backendRefs: [{ group: gateway.portico.dev, kind: Composite, name: ${target} }]
`
}

const PROFILE_MEMBERS = `  - backendRef: { name: users, port: 80 }
    path: /users/{id}
    allow: [id, name, email]
  - backendRef: { name: orders, port: 80 }
    path: /orders?user={id}
    group: orders
    target: data
    allow: [id, total, status]
    mapping: { total: amount }
    required: false
`

function manifests(): string {
  return [
    baseManifests(port, { users: users.port, orders: orders.port, recs: recs.port, billing: billing.port, a: a.port, b: b.port }).trimEnd(),
    composite(
      'profile',
      `  timeout: 20s
  partialStatus: 206
  pathPattern: /profile/{id}
  members:
${PROFILE_MEMBERS}  - backendRef: { name: recs, port: 80 }
    name: recs
    path: /slow
    group: recommendations
    timeout: 200ms
    required: false
`,
    ),
    composite(
      'failfast',
      `  timeout: 25s
  members:
  - { backendRef: { name: users, port: 80 }, path: /users/fail }
  - { backendRef: { name: recs, port: 80 }, path: /slow, required: false }
`,
    ),
    composite('fast', `  timeout: 20s\n  pathPattern: /fast/{id}\n  members:\n${PROFILE_MEMBERS}`),
    composite('nonjson', `  members:\n  - backendRef: { name: recs, port: 80 }\n    path: /text\n`),
    composite('conflict-error', `  members:\n  - { backendRef: { name: a, port: 80 }, path: /x }\n  - { backendRef: { name: b, port: 80 }, path: /x }\n`),
    composite('conflict-first', `  onConflict: First\n  members:\n  - { backendRef: { name: a, port: 80 }, path: /x }\n  - { backendRef: { name: b, port: 80 }, path: /x }\n`),
    composite('conflict-last', `  onConflict: Last\n  members:\n  - { backendRef: { name: a, port: 80 }, path: /x }\n  - { backendRef: { name: b, port: 80 }, path: /x }\n`),
    composite(
      'signup',
      `  members:
  - backendRef: { name: users, port: 80 }
    path: /users
    method: POST
    requestBody: { allow: [user, plan] }
  - backendRef: { name: billing, port: 80 }
    path: /billing
    method: PUT
    requestBody: { allow: [card.number, plan] }
`,
    ),
    composite('broken', `  onConflict: Sometimes\n  members: []\n`),
    composite('foreign', `  members:\n  - { backendRef: { name: users, namespace: other, port: 80 }, path: /x }\n`),
    compositeRoute('profile', '/profile', 'profile'),
    compositeRoute('fast', '/fast', 'fast'),
    compositeRoute('failfast', '/failfast', 'failfast'),
    compositeRoute('nonjson', '/nonjson', 'nonjson'),
    compositeRoute('conflict-error', '/conflict-error', 'conflict-error'),
    compositeRoute('conflict-first', '/conflict-first', 'conflict-first'),
    compositeRoute('conflict-last', '/conflict-last', 'conflict-last'),
    compositeRoute('signup', '/signup', 'signup'),
    compositeRoute('missing', '/missing', 'nowhere'),
  ].join('\n---\n')
}

beforeAll(async () => {
  port = await freePort()
  base = `http://127.0.0.1:${port}`
  cfg.write('m.yaml', manifests())
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`${base}/fast/1`).then((r) => r.status, () => 0)) === 200, 20_000, 'serving')
})

afterAll(async () => {
  release()
  await gw.stop()
  for (const s of [users, orders, recs, billing, a, b]) await s.server.stop(true)
  cfg.cleanup()
})

describe('aggregation', () => {
  test('three members: merged in declared order, shaped, the slow optional one timed out (206, incomplete, not cacheable)', async () => {
    const res = await fetch(`${base}/profile/42`)
    expect(res.status).toBe(206)
    expect(res.headers.get('x-portico-completed')).toBe('false')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(await res.text()).toBe(
      JSON.stringify({
        id: '42',
        name: 'Ada',
        email: 'ada@example.com',
        orders: [
          { id: 1, amount: 10, status: 'paid' },
          { id: 2, amount: 25, status: 'open' },
        ],
        recommendations: null,
      }),
    )
    expect(orders.seen.some((r) => r.path === '/orders?user=42')).toBe(true)
  })

  test('a complete answer is 200 and says so', async () => {
    const res = await fetch(`${base}/fast/7`)
    expect(res.status).toBe(200)
    expect(res.headers.get('x-portico-completed')).toBe('true')
    const body = (await res.json()) as Record<string, unknown>
    expect(Object.keys(body)).toEqual(['id', 'name', 'email', 'orders'])
  })

  test('HEAD: members are asked with GET, the client gets the head', async () => {
    const res = await fetch(`${base}/fast/77`, { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(users.seen.filter((r) => r.path === '/users/77').map((r) => r.method)).toEqual(['GET'])
  })

  test('request metrics label the aggregate with the Composite as its backend', async () => {
    await fetch(`${base}/fast/8`)
    const text = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
    expect(text).toMatch(/portico_http_requests_total\{[^}]*route="default\/fast",rule="0",backend="composite\/default\/fast",method="GET",code="200"\} [1-9]/)
  })

  test('a required member failing: 502 naming it, no upstream detail', async () => {
    const res = await fetch(`${base}/profile/fail`)
    expect(res.status).toBe(502)
    expect(res.headers.get('x-portico-completed')).toBe('false')
    const text = await res.text()
    expect(JSON.parse(text)).toEqual({ error: 'required member failed', member: 'users' })
    expect(text).not.toContain('10.0.0.7')
  })

  test('a required member failing ends the request at once: the optional member still running is cancelled', async () => {
    // the optional member never answers and has 25 s: only cancellation can answer within 10 s
    const res = await fetch(`${base}/failfast`, { signal: AbortSignal.timeout(10_000) })
    expect(res.status).toBe(502)
    expect(await res.json()).toEqual({ error: 'required member failed', member: 'users' })
  })

  test('a member answering something other than JSON: a clear 502', async () => {
    const res = await fetch(`${base}/nonjson`)
    expect(res.status).toBe(502)
    expect(await res.json()).toEqual({ error: 'member answered with something other than JSON', member: 'recs' })
  })

  test('parameters are encoded: a segment cannot reach another path', async () => {
    const res = await fetch(`${base}/fast/..%2Fadmin`)
    expect(res.status).toBe(200)
    expect(users.seen.some((r) => r.path === '/users/..%2Fadmin')).toBe(true)
    expect(users.seen.some((r) => r.path.startsWith('/admin'))).toBe(false)
  })

  test('a missing parameter is a 400 naming it', async () => {
    const res = await fetch(`${base}/fast`)
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({ error: 'missing parameter', parameter: 'id' })
  })

  test('key conflicts per onConflict: Error names the key, First and Last pick a side', async () => {
    const err = await fetch(`${base}/conflict-error`)
    expect(err.status).toBe(502)
    expect(await err.json()).toEqual({ error: 'conflicting key', key: 'name', members: ['a', 'b'] })
    expect(await (await fetch(`${base}/conflict-first`)).text()).toBe('{"name":"from-a","a":1,"b":2}')
    expect(await (await fetch(`${base}/conflict-last`)).text()).toBe('{"name":"from-b","a":1,"b":2}')
  })

  test('the same answer bytes over 100 runs (members answer in random order)', async () => {
    const bodies = new Set<string>()
    for (let i = 0; i < 100; i += 10) {
      const batch = await Promise.all(Array.from({ length: 10 }, () => fetch(`${base}/fast/9`).then((r) => r.text())))
      for (const t of batch) bodies.add(t)
    }
    expect(bodies.size).toBe(1)
    expect([...bodies][0]).toContain('"amount":25')
  }, 120_000)
})

describe('request splitting', () => {
  test('one POST fans out: each member gets its part of the body, with its own method', async () => {
    const body = { user: { name: 'Ada' }, card: { number: '4242', cvc: '123' }, plan: 'pro' }
    const res = await fetch(`${base}/signup`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      created: { user: { name: 'Ada' }, plan: 'pro' },
      billing: { method: 'PUT', got: { card: { number: '4242' }, plan: 'pro' } },
    })
    const u = users.seen.find((r) => r.path === '/users')!
    expect(u.method).toBe('POST')
    expect(u.headers.get('content-type')).toBe('application/json')
  })

  test('a body that is not a JSON object is refused before any member is called', async () => {
    const before = billing.seen.length
    const res = await fetch(`${base}/signup`, { method: 'POST', body: '[1,2]' })
    expect(res.status).toBe(400)
    expect(billing.seen.length).toBe(before)
  })
})

describe('status and metrics', () => {
  async function resources(): Promise<{ kind: string; metadata: { name: string }; status?: any }[]> {
    return (await (await fetch(`http://127.0.0.1:${gw.adminPort}/resources`)).json()) as never
  }

  test('Composites report Accepted and ResolvedRefs; a route to a missing one reports ResolvedRefs=False', async () => {
    const all = await eventually(async () => {
      const r = await resources()
      return r.find((o) => o.kind === 'Composite' && o.metadata.name === 'broken')?.status ? r : undefined
    })
    const cond = (kind: string, name: string, type: string) => {
      const o = all.find((x) => x.kind === kind && x.metadata.name === name)!
      const conditions = kind === 'HTTPRoute' ? o.status.parents[0].conditions : o.status.conditions
      return conditions.find((c: { type: string }) => c.type === type)
    }
    expect(cond('Composite', 'profile', 'Accepted').status).toBe('True')
    expect(cond('Composite', 'profile', 'ResolvedRefs').status).toBe('True')
    expect(cond('Composite', 'broken', 'Accepted').status).toBe('False')
    expect(cond('Composite', 'broken', 'Accepted').message).toContain('onConflict')
    const foreign = cond('Composite', 'foreign', 'ResolvedRefs')
    expect(foreign.status).toBe('False')
    expect(foreign.reason).toBe('RefNotPermitted')
    const missing = cond('HTTPRoute', 'missing', 'ResolvedRefs')
    expect(missing.status).toBe('False')
    expect(missing.message).toContain('Composite default/nowhere not found')
    expect(cond('HTTPRoute', 'profile', 'ResolvedRefs').status).toBe('True')
    expect((await fetch(`${base}/missing`)).status).toBe(500)
  })

  test('member calls are counted per member and outcome', async () => {
    await fetch(`${base}/profile/42`)
    const text = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
    expect(text).toContain('portico_composite_member_requests_total{composite="composite/default/profile",member="recs",outcome="timeout"}')
    expect(text).toMatch(/portico_composite_member_requests_total\{composite="composite\/default\/profile",member="users",outcome="ok"\} [1-9]/)
    expect(text).toContain('portico_composite_member_duration_seconds_bucket{composite="composite/default/profile",member="orders",outcome="ok",le="+Inf"}')
  })
})
