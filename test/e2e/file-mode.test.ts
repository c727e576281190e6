/**
 * The whole gateway in file mode, over real sockets: manifests in a folder → traffic and status.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route, startGateway } from './support.ts'

let v1: EchoUpstream
let v2: EchoUpstream
let cfg: ConfigDir
let gw: Portico
let port: number
let admin: string

beforeAll(async () => {
  v1 = startEcho('v1')
  v2 = startEcho('v2')
  port = await freePort()
  cfg = new ConfigDir()
  cfg.write('base.yaml', baseManifests(port, { v1: v1.port, v2: v2.port }))
  cfg.write('routes.yaml', route('r', '/', 'v1'))
  gw = await startGateway(cfg.dir)
  admin = `http://127.0.0.1:${gw.adminPort}`
})

afterAll(async () => {
  await gw.stop()
  await v1.stop()
  await v2.stop()
  cfg.cleanup()
})

const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`)
const backendOf = async (path: string) => {
  const r = await get(path)
  return r.status === 200 ? ((await r.json()) as { name?: string; backend?: string }) : { status: r.status }
}
const resources = async () => (await (await fetch(`${admin}/resources`)).json()) as any[]

test('ready, serving, and status computed for every object', async () => {
  expect((await fetch(`${admin}/readyz`)).status).toBe(200)
  const r = await get('/hello')
  expect(r.status).toBe(200)
  expect(v1.requests.at(-1)!.path).toBe('/hello')
  const objs = await resources()
  const gwObj = objs.find((o) => o.kind === 'Gateway')
  expect(gwObj.status.conditions.find((c: any) => c.type === 'Programmed').status).toBe('True')
  expect(gwObj.status.listeners[0].attachedRoutes).toBe(1)
  const rt = objs.find((o) => o.kind === 'HTTPRoute')
  expect(rt.status.parents[0].conditions.find((c: any) => c.type === 'Accepted').status).toBe('True')
  expect(rt.status.parents[0].controllerName).toBe('portico.dev/gateway-controller')
  // objects we do not own a status for (Services) have none
  expect(objs.find((o) => o.kind === 'Service').status).toBeUndefined()
})

test('an atomically renamed manifest is picked up without a restart', async () => {
  cfg.write('routes.yaml', route('r', '/', 'v2', 2))
  await eventually(async () => (await get('/x')).status === 200 && v2.requests.some((q) => q.path === '/x'), 5000, 'route moved to v2')
  const rt = (await resources()).find((o) => o.kind === 'HTTPRoute')
  await eventually(async () => (await resources()).find((o) => o.kind === 'HTTPRoute').status.parents[0].conditions[0].observedGeneration === 2)
  expect(rt).toBeDefined()
})

test('a missing backend answers 500 for its rule and reports BackendNotFound; other routes keep working', async () => {
  cfg.write('routes.yaml', route('r', '/', 'v1', 3) + '---\n' + route('broken', '/broken', 'does-not-exist'))
  await eventually(async () => (await get('/broken')).status === 500, 5000, '500 on the broken route')
  expect((await get('/fine')).status).toBe(200)
  const broken = (await resources()).find((o) => o.kind === 'HTTPRoute' && o.metadata.name === 'broken')
  const resolved = broken.status.parents[0].conditions.find((c: any) => c.type === 'ResolvedRefs')
  expect(resolved).toMatchObject({ status: 'False', reason: 'BackendNotFound' })
})

test('a broken file is reported and the last good config keeps serving', async () => {
  cfg.write('routes.yaml', route('r', '/', 'v1', 4))
  await eventually(async () => (await resources()).filter((o) => o.kind === 'HTTPRoute').length === 1)
  cfg.write('routes.yaml', 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r\n  oops: [\n')
  const problems = await eventually(async () => {
    const p = (await (await fetch(`${admin}/problems`)).json()) as { load: { origin: string; line?: number }[] }
    return p.load.length ? p.load : undefined
  })
  expect(problems[0]!.origin).toEndWith('routes.yaml')
  expect(problems[0]!.line).toBe(1)
  for (let i = 0; i < 20; i++) expect((await get(`/still-${i}`)).status).toBe(200)
  // an object-level error keeps that object's last good version and shows on its status
  cfg.write('routes.yaml', route('r', '/', 'v1', 5).replace('rules:', 'rules: 7\n  x:'))
  await eventually(async () => {
    const rt = (await resources()).find((o) => o.kind === 'HTTPRoute')
    return rt.status.conditions?.[0]?.reason === 'Invalid' ? rt : undefined
  })
  expect((await get('/after-invalid')).status).toBe(200)
  cfg.write('routes.yaml', route('r', '/', 'v1', 6))
  await eventually(async () => ((await (await fetch(`${admin}/problems`)).json()) as { load: unknown[] }).load.length === 0)
})

test('config churn under load loses no request', async () => {
  let failures = 0
  let done = 0
  let stop = false
  const load = Array.from({ length: 8 }, async () => {
    while (!stop) {
      const r = await get('/load').catch(() => undefined)
      if (r?.status !== 200) failures++
      else await r.arrayBuffer()
      done++
    }
  })
  for (let i = 0; i < 30; i++) {
    // alternate backends and add/remove an unrelated route on every change
    cfg.write('routes.yaml', route('r', '/', i % 2 ? 'v1' : 'v2', 10 + i) + (i % 3 ? '---\n' + route(`extra-${i}`, `/extra-${i}`, 'v1') : ''))
    await Bun.sleep(30)
  }
  await gw.controller.idle()
  stop = true
  await Promise.all(load)
  expect(done).toBeGreaterThan(100)
  expect(failures).toBe(0)
})

test('removing the listener port closes it; adding it back reopens it', async () => {
  const other = await freePort()
  cfg.write('base.yaml', baseManifests(other, { v1: v1.port, v2: v2.port }))
  await eventually(async () => (await fetch(`http://127.0.0.1:${other}/`).then((r) => r.status, () => 0)) === 200, 5000, 'new port serving')
  await eventually(async () => (await get('/').then(() => false, () => true)), 5000, 'old port closed')
  cfg.write('base.yaml', baseManifests(port, { v1: v1.port, v2: v2.port }))
  await eventually(async () => (await get('/').then((r) => r.status, () => 0)) === 200, 5000, 'old port back')
})

test('a listener whose port cannot be bound is not Programmed; the others are', async () => {
  const taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  try {
    const twoListeners = baseManifests(port, { v1: v1.port, v2: v2.port }).replace(
      `listeners: [{ name: http, protocol: HTTP, port: ${port} }]`,
      `listeners: [{ name: http, protocol: HTTP, port: ${port} }, { name: blocked, protocol: HTTP, port: ${taken.port} }]`,
    )
    cfg.write('base.yaml', twoListeners)
    const gwObj = await eventually(async () => {
      const g = (await resources()).find((o) => o.kind === 'Gateway')
      return g?.status?.listeners?.length === 2 ? g : undefined
    })
    const listener = (name: string) => gwObj.status.listeners.find((l: any) => l.name === name)
    expect(listener('blocked').conditions.find((c: any) => c.type === 'Programmed')).toMatchObject({ status: 'False', reason: 'Invalid' })
    expect(listener('http').conditions.find((c: any) => c.type === 'Programmed').status).toBe('True')
    expect((await get('/still-serving')).status).toBe(200)
  } finally {
    taken.stop(true)
    cfg.write('base.yaml', baseManifests(port, { v1: v1.port, v2: v2.port }))
  }
})
