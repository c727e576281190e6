/**
 * Each Composite member call is a child span of the request's gateway span: exported to a local
 * OTLP receiver, and its traceparent is what the member receives.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startPortico, type Portico } from '../../src/app.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { configureTelemetry } from '../../src/telemetry/observe.ts'
import { baseManifests, ConfigDir, eventually, freePort } from '../e2e/support.ts'

const received: Record<string, string> = {}
const member = (name: string) =>
  Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch(req) {
      received[name] = req.headers.get('traceparent') ?? ''
      return Response.json({ [name]: true })
    },
  })
const users = member('users')
const orders = member('orders')
const spans: any[] = []
const otlp = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const body = (await req.json()) as any
    for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
    return Response.json({})
  },
})
const cfg = new ConfigDir()
let gw: Portico
let base = ''

beforeAll(async () => {
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  cfg.write(
    'm.yaml',
    `${baseManifests(port, { users: users.port!, orders: orders.port! })}---
apiVersion: gateway.portico.dev/v1alpha1
kind: Composite
metadata: { name: both, namespace: default }
spec:
  members:
  - { backendRef: { name: users, port: 80 }, path: /u }
  - { backendRef: { name: orders, port: 80 }, path: /o }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: both, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ backendRefs: [{ group: gateway.portico.dev, kind: Composite, name: both }] }]
`,
  )
  const telemetry = { accessLog: false, otlpEndpoint: `http://127.0.0.1:${otlp.port}` }
  gw = await startPortico({ configDir: cfg.dir, adminPort: 0, bindAddress: '127.0.0.1', controllerName: 'portico.dev/gateway-controller', logger: silentLogger, telemetry })
  configureTelemetry(telemetry)
  await eventually(async () => (await fetch(`${base}/`)).status === 200, 5000, 'route live')
})

afterAll(async () => {
  await gw.stop()
  configureTelemetry(undefined)
  for (const s of [users, orders, otlp]) s.stop(true)
  cfg.cleanup()
})

test('one child span per member, under the gateway span, carried to the member', async () => {
  const traceId = '0af7651916cd43dd8448eb211c80319c'
  const parent = 'b7ad6b7169203331'
  const res = await fetch(`${base}/`, { headers: { traceparent: `00-${traceId}-${parent}-01` } })
  expect(await res.json()).toEqual({ users: true, orders: true })
  const gatewaySpan = await eventually(() => spans.find((s) => s.traceId === traceId && s.parentSpanId === parent), 5000, 'gateway span')
  const children = await eventually(() => {
    const c = spans.filter((s) => s.traceId === traceId && s.parentSpanId === gatewaySpan.spanId)
    return c.length === 2 ? c : undefined
  }, 5000, 'member spans')
  expect(children.map((s) => s.name).sort()).toEqual(['composite member orders', 'composite member users'])
  for (const name of ['users', 'orders']) {
    const span = children.find((s) => s.name === `composite member ${name}`)
    expect(received[name]).toBe(`00-${traceId}-${span.spanId}-01`)
  }
})
