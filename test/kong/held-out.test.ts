/**
 * The held-out check: Kong's own "Get started" manifests (test/kong/held-out/get-started.yaml,
 * as Kong's docs apply them) served by Portico with only spec.controllerName changed. The
 * listener gets a free port and the echo Service the EndpointSlice a cluster would create (file
 * mode has no endpoints controller); nothing else is touched. Real sockets throughout.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { ConfigDir, eventually, freePort, startGateway } from '../e2e/support.ts'

const KONG = readFileSync(join(import.meta.dir, 'held-out/get-started.yaml'), 'utf8')

let echo: EchoUpstream
let cfg: ConfigDir
let gw: Portico
let port: number

beforeAll(async () => {
  echo = startEcho('echo')
  port = await freePort()
  cfg = new ConfigDir()
  const manifests = KONG.replace('controllerName: konghq.com/kic-gateway-controller', 'controllerName: portico.dev/gateway-controller').replace('      port: 80\n', `      port: ${port}\n`)
  // only these two lines differ from Kong's file
  expect(manifests.split('\n').filter((l, i) => l !== KONG.split('\n')[i])).toHaveLength(2)
  cfg.write('get-started.yaml', manifests)
  cfg.write('endpoints.yaml', `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: echo-1, namespace: default, labels: { kubernetes.io/service-name: echo } }
addressType: IPv4
ports: [{ name: http, port: ${echo.port} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
`)
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/echo`)).status === 401, 5000, 'serving')
})

afterAll(async () => {
  await gw?.stop()
  await echo?.stop()
  cfg?.cleanup()
})

test("Kong's Get started, served as Kong serves it: key-auth with the consumer's key, 5 a minute, CORS everywhere", async () => {
  const resources = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/resources`)).json()) as any[]
  const route = resources.find((o) => o.kind === 'HTTPRoute')
  expect(route.status.parents[0].conditions.find((c: any) => c.type === 'Accepted').status).toBe('True')
  expect(resources.find((o) => o.kind === 'KongConsumer').status.conditions[0].status).toBe('True')

  const none = await fetch(`http://127.0.0.1:${port}/echo`)
  expect(none.status).toBe(401)
  expect(((await none.json()) as any).message).toBe('No API key found in request')

  const s = new Date().getSeconds()
  if (s >= 57) await Bun.sleep((61 - s) * 1000)
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/echo/hello`, { headers: { apikey: 'so-secret', origin: 'https://kong.example' } })
    await r.text()
    statuses.push(r.status)
    if (i === 0) {
      expect(r.headers.get('x-ratelimit-limit-minute')).toBe('5')
      expect(r.headers.get('x-ratelimit-remaining-minute')).toBe('4')
      expect(r.headers.get('access-control-allow-origin')).toBe('https://kong.example')
      expect(r.headers.get('access-control-expose-headers')).toBe('X-RateLimit-Remaining-Minute')
      const up = echo.requests.at(-1)!
      expect(up.path).toBe('/hello')
      expect(up.headers['x-consumer-username']).toBe('kotenok')
    }
  }
  expect(statuses).toEqual([200, 200, 200, 200, 200, 429])

  const pre = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'OPTIONS', headers: { origin: 'https://kong.example', 'access-control-request-method': 'POST' } })
  expect(pre.status).toBe(200)
  expect(pre.headers.get('access-control-allow-methods')).toBe('GET,POST')
  expect(pre.headers.get('access-control-max-age')).toBe('3600')
})
