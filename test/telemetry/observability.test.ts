/**
 * Request metrics, access log and tracing end to end: real sockets, the direct path (plain
 * forwarding) and the pipeline path (a route with a header filter), a local OTLP receiver.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startPortico, type Portico } from '../../src/app.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { configureTelemetry } from '../../src/telemetry/observe.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route } from '../e2e/support.ts'

let cfg: ConfigDir
let gw: Portico
let echo: EchoUpstream
let port: number
let base: string
let admin: string
const lines: Record<string, unknown>[] = []
const spans: any[] = []
let otlp: ReturnType<typeof Bun.serve>
let tcpEcho: { readonly port: number; stop(closeActive?: boolean): void }
let tcpPort: number
let wsEcho: ReturnType<typeof Bun.serve>

beforeAll(async () => {
  echo = startEcho('echo')
  port = await freePort()
  otlp = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      if (new URL(req.url).pathname !== '/v1/traces') return new Response('no', { status: 404 })
      const body = (await req.json()) as any
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
      return new Response('{}', { headers: { 'content-type': 'application/json' } })
    },
  })
  tcpEcho = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data: (s, d) => void s.write(d) } })
  tcpPort = await freePort()
  wsEcho = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (req, server) => (server.upgrade(req, { data: undefined }) ? undefined : new Response('no upgrade', { status: 400 })),
    websocket: { message: (ws, msg) => void ws.send(msg) },
  })
  cfg = new ConfigDir()
  cfg.write(
    'all.yaml',
    baseManifests(port, { echo: echo.port }) +
      '---\n' +
      route('direct', '/d', 'echo') +
      `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: piped, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /p } }]
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: x-added, value: '1' }] } }]
      backendRefs: [{ name: echo, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: tcpgw, namespace: default }
spec:
  gatewayClassName: portico
  listeners: [{ name: tcp, protocol: TCP, port: ${tcpPort} }]
---
apiVersion: v1
kind: Service
metadata: { name: tcpecho, namespace: default }
spec: { ports: [{ name: tcp, port: 3000, targetPort: ${tcpEcho.port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: tcpecho-1, namespace: default, labels: { kubernetes.io/service-name: tcpecho } }
addressType: IPv4
ports: [{ name: tcp, port: ${tcpEcho.port} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: tcp, namespace: default }
spec:
  parentRefs: [{ name: tcpgw }]
  rules: [{ backendRefs: [{ name: tcpecho, port: 3000 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: wsecho, namespace: default }
spec: { ports: [{ name: http, port: 80, targetPort: ${wsEcho.port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: wsecho-1, namespace: default, labels: { kubernetes.io/service-name: wsecho } }
addressType: IPv4
ports: [{ name: http, port: ${wsEcho.port} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
---
${route('ws', '/ws', 'wsecho')}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: retried, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /status } }]
      retry: { codes: [503], attempts: 2 }
      backendRefs: [{ name: echo, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: wsp, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /wsp } }]
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: x-added, value: '1' }] } }]
      backendRefs: [{ name: wsecho, port: 80 }]
`,
  )
  gw = await startPortico({
    configDir: cfg.dir,
    adminPort: 0,
    probePort: 0,
    probeAddress: '127.0.0.1',
    bindAddress: '127.0.0.1',
    controllerName: 'portico.dev/gateway-controller',
    logger: silentLogger,
    telemetry: { accessLog: true, otlpEndpoint: `http://127.0.0.1:${otlp.port}` },
  })
  // capture the access log instead of stdout
  configureTelemetry({ accessLog: true, otlpEndpoint: `http://127.0.0.1:${otlp.port}` }, (chunk) => {
    for (const l of chunk.split('\n')) if (l) lines.push(JSON.parse(l))
  })
  base = `http://127.0.0.1:${port}`
  admin = `http://127.0.0.1:${gw.adminPort}`
  await eventually(async () => (await fetch(`${base}/d`)).status === 200, 5000, 'route live')
})

afterAll(async () => {
  await gw.stop()
  configureTelemetry(undefined)
  await echo.stop()
  otlp.stop(true)
  tcpEcho.stop(true)
  wsEcho.stop(true)
  cfg.cleanup()
})

const metricValue = (text: string, name: string, labels: Record<string, string>) => {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return undefined
}

test('requests on both paths are counted with route labels, histograms and bytes; local replies by reason', async () => {
  const before = await (await fetch(`${admin}/metrics`)).text()
  const d0 = metricValue(before, 'portico_http_requests_total', { route: 'default/direct', method: 'GET', code: '200' }) ?? 0
  for (let i = 0; i < 5; i++) expect((await fetch(`${base}/d/x`)).status).toBe(200)
  for (let i = 0; i < 3; i++) expect((await fetch(`${base}/p/y`, { method: 'POST', body: 'hello' })).status).toBe(200)
  expect((await fetch(`${base}/nowhere`)).status).toBe(404)
  const text = await (await fetch(`${admin}/metrics`)).text()
  const labels = { gateway: 'default/gw', listener: 'http', route: 'default/direct', rule: '0', backend: 'default/echo:80', method: 'GET', code: '200' }
  expect(metricValue(text, 'portico_http_requests_total', labels)! - d0).toBe(5)
  expect(metricValue(text, 'portico_http_requests_total', { route: 'default/piped', method: 'POST', code: '200' })).toBe(3)
  expect(metricValue(text, 'portico_http_request_duration_seconds_count', labels)! - d0).toBe(5)
  expect(metricValue(text, 'portico_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' })! - d0).toBe(5)
  expect(metricValue(text, 'portico_upstream_request_duration_seconds_count', { route: 'default/piped' })).toBe(3)
  expect(metricValue(text, 'portico_http_request_bytes_total', { route: 'default/piped' })).toBe(15)
  expect(metricValue(text, 'portico_http_response_bytes_total', labels)).toBeGreaterThan(0)
  expect(metricValue(text, 'portico_http_local_replies_total', { reason: 'no_route', code: '404' })).toBeGreaterThanOrEqual(1)
  expect(text).toContain('# TYPE portico_http_request_duration_seconds histogram')
  expect(metricValue(text, 'portico_backend_endpoint_healthy', { pool: 'default/echo:80', check: 'all' })).toBe(1)
  // the probe socket serves the same
  const probe = await (await fetch(`http://127.0.0.1:${gw.probePort}/metrics`)).text()
  expect(probe).toContain('portico_http_requests_total{gateway="default/gw"')
})

test('access log: one JSON line per request with request id, route and backend; traceparent goes upstream with a new parent id; spans reach the OTLP receiver', async () => {
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736'
  const parent = '00f067aa0ba902b7'
  for (const path of ['/d/traced', '/p/traced']) {
    lines.length = 0
    const seen = echo.nextRequest()
    const res = await fetch(`${base}${path}?secret=1`, { headers: { traceparent: `00-${trace}-${parent}-01`, 'user-agent': 'obs-test' } })
    expect(res.status).toBe(200)
    const req = await seen
    const tp = req.headers['traceparent']!
    expect(tp).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`))
    const spanId = tp.split('-')[2]!
    expect(spanId).not.toBe(parent)
    const requestId = req.headers['x-request-id']!
    expect(requestId).toBeTruthy()
    const line = await eventually(() => lines.find((l) => l.path === path), 3000, `access log line for ${path}`)
    expect(line).toMatchObject({ type: 'http', method: 'GET', status: 200, route: path === '/d/traced' ? 'default/direct' : 'default/piped', backend: 'default/echo:80', trace_id: trace, span_id: spanId, request_id: requestId, user_agent: 'obs-test', client_ip: '127.0.0.1' })
    expect(typeof line.duration_ms).toBe('number')
    const span = await eventually(() => spans.find((s) => s.spanId === spanId), 5000, `span ${spanId} exported`)
    expect(span.traceId).toBe(trace)
    expect(span.parentSpanId).toBe(parent)
    expect(span.attributes.find((a: any) => a.key === 'http.response.status_code').value.intValue).toBe('200')
  }
})

test('a request without traceparent starts a new trace', async () => {
  const seen = echo.nextRequest()
  await fetch(`${base}/d/new`)
  const tp = (await seen).headers['traceparent']!
  expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
})

test('TCP connections: counted with bytes each way, one access log line at the end', async () => {
  lines.length = 0
  let got = ''
  let done: () => void = () => {}
  const echoed = new Promise<void>((r) => (done = r))
  const sock = await Bun.connect({ hostname: '127.0.0.1', port: tcpPort, socket: { data: (_s, d) => { got += Buffer.from(d).toString(); if (got === 'hello tcp') done() } } })
  sock.write('hello tcp')
  await echoed
  sock.end()
  const text = await eventually(async () => {
    const t = await (await fetch(`${admin}/metrics`)).text()
    return metricValue(t, 'portico_tcp_connections_total', { route: 'default/tcp' }) === 1 && metricValue(t, 'portico_tcp_connections_open', { route: 'default/tcp' }) === 0 ? t : undefined
  }, 3000, 'tcp counted')
  expect(metricValue(text, 'portico_tcp_connections_received_bytes_total', { route: 'default/tcp', backend: 'default/tcpecho:3000' })).toBe(9)
  expect(metricValue(text, 'portico_tcp_connections_sent_bytes_total', { route: 'default/tcp' })).toBe(9)
  const line = await eventually(() => lines.find((l) => l.type === 'tcp'), 3000, 'tcp access log line')
  expect(line).toMatchObject({ type: 'tcp', route: 'default/tcp', backend: 'default/tcpecho:3000', bytes_in: 9, bytes_out: 9, client_ip: '127.0.0.1' })
})

for (const [name, path] of [['direct', '/ws'], ['pipeline', '/wsp']] as const) {
test(`WebSocket sessions (${name} path): the handshake is a 101 request, the session is counted with its messages and logged at its end`, async () => {
  lines.length = 0
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  const got: string[] = []
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => {
      ws.send('one')
      ws.send('two')
    }
    ws.onmessage = (e) => {
      got.push(String(e.data))
      if (got.length === 2) ws.close(1000)
    }
    ws.onclose = () => resolve()
    ws.onerror = () => reject(new Error('ws error'))
  })
  expect(got).toEqual(['one', 'two'])
  const text = await eventually(async () => {
    const t = await (await fetch(`${admin}/metrics`)).text()
    return metricValue(t, 'portico_websocket_sessions_total', { route: `default/${path.slice(1)}` }) === 1 && metricValue(t, 'portico_websocket_sessions_open', { route: `default/${path.slice(1)}` }) === 0 ? t : undefined
  }, 3000, 'websocket session counted and closed')
  expect(metricValue(text, 'portico_http_requests_total', { route: `default/${path.slice(1)}`, method: 'GET', code: '101' })).toBe(1)
  expect(metricValue(text, 'portico_websocket_messages_total', { route: `default/${path.slice(1)}` })).toBeGreaterThanOrEqual(4)
  const line = await eventually(() => lines.find((l) => l.type === 'websocket' && l.route === `default/${path.slice(1)}`), 3000, 'websocket access log line')
  expect(line).toMatchObject({ type: 'websocket', route: `default/${path.slice(1)}`, backend: 'default/wsecho:80' })
  expect(line.messages as number).toBeGreaterThanOrEqual(4)
})
}

test('retries per the rule are counted', async () => {
  expect((await fetch(`${base}/status/503`)).status).toBe(503)
  const text = await (await fetch(`${admin}/metrics`)).text()
  expect(metricValue(text, 'portico_http_retries_total', { route: 'default/retried', rule: '0', backend: 'default/echo:80' })).toBe(2)
  expect(metricValue(text, 'portico_http_requests_total', { route: 'default/retried', code: '503' })).toBe(1)
})
