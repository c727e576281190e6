import { expect, test } from 'bun:test'
import { createAdmin, type AdminDeps } from '../../src/admin/index.ts'
import type { K8sObject } from '../../src/store/kinds.ts'

const route: K8sObject = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'default', generation: 3 }, spec: {} }
const gw: K8sObject = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'g', namespace: 'default', generation: 1 }, spec: {} }

function deps(over: Partial<AdminDeps> = {}): AdminDeps {
  return {
    ready: () => true,
    objects: () => [route, gw],
    statusOf: (key) => (key === 'HTTPRoute/default/r' ? { parents: [{ parentRef: { name: 'g' }, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted' }] }] } : undefined),
    problems: () => [],
    snapshot: () => ({ revision: 7, http: [], l4: [], pools: {} }),
    rejected: () => [],
    metrics: () => 'portico_up 1\n',
    ...over,
  }
}
const get = (app: ReturnType<typeof createAdmin>, path: string) => app.handle(new Request(`http://admin${path}`))

test('readyz is 503 until the first snapshot is live', async () => {
  let ready = false
  const app = createAdmin(deps({ ready: () => ready }))
  expect((await get(app, '/readyz')).status).toBe(503)
  ready = true
  expect((await get(app, '/readyz')).status).toBe(200)
  expect((await get(app, '/healthz')).status).toBe(200)
})

test('resources lists every object with its computed status, sorted', async () => {
  const body = (await (await get(createAdmin(deps()), '/resources')).json()) as K8sObject[]
  expect(body.map((o) => o.kind)).toEqual(['Gateway', 'HTTPRoute'])
  expect(body[0]!.status).toBeUndefined()
  expect(body[1]!.status.parents[0].conditions[0].reason).toBe('Accepted')
})

test('a load problem shows as Accepted=False/Invalid on the object, parents included', async () => {
  const app = createAdmin(deps({ problems: () => [{ origin: 'routes/r.yaml', line: 4, objectKey: 'HTTPRoute/default/r', message: 'spec.rules must be a list' }] }))
  const body = (await (await get(app, '/resources')).json()) as K8sObject[]
  const r = body.find((o) => o.kind === 'HTTPRoute')!
  expect(r.status.conditions[0]).toMatchObject({ type: 'Accepted', status: 'False', reason: 'Invalid', observedGeneration: 3 })
  expect(r.status.conditions[0].message).toContain('routes/r.yaml:4')
  expect(r.status.parents[0].conditions).toHaveLength(1)
  expect(r.status.parents[0].conditions[0].reason).toBe('Invalid')
  const problems = (await (await get(app, '/problems')).json()) as { load: unknown[] }
  expect(problems.load).toHaveLength(1)
})

test('config serves the live IR, metrics the text exposition', async () => {
  const app = createAdmin(deps())
  expect(((await (await get(app, '/config')).json()) as { revision: number }).revision).toBe(7)
  const m = await get(app, '/metrics')
  expect(m.headers.get('content-type')).toContain('text/plain')
  expect(await m.text()).toBe('portico_up 1\n')
  const none = createAdmin(deps({ snapshot: () => undefined }))
  expect((await get(none, '/config')).status).toBe(503)
})
