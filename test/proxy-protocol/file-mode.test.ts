/**
 * End to end in file mode: a ClientTrafficPolicy in the config folder turns on PROXY protocol,
 * a connection limit and HTTP timeouts on a Gateway's port; curl --haproxy-protocol and a header
 * written by hand reach the backend with the header's address; editing the policy applies to new
 * connections.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import net from 'node:net'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route, startGateway } from '../e2e/support.ts'

let v1: EchoUpstream
let cfg: ConfigDir
let gw: Portico
let port: number

function policy(spec: string): string {
  return `apiVersion: gateway.portico.dev/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: edge, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: gw }]
${spec}`
}

const PROXIED = `  proxyProtocol: { optional: false }
  connection: { connectionLimit: { value: 10000 } }
  timeout: { http: { idleTimeout: 60s, requestReceivedTimeout: 10s } }
`

beforeAll(async () => {
  v1 = startEcho('v1')
  port = await freePort()
  cfg = new ConfigDir()
  cfg.write('base.yaml', baseManifests(port, { v1: v1.port }))
  cfg.write('routes.yaml', route('r', '/', 'v1'))
  cfg.write('policy.yaml', policy(PROXIED))
  gw = await startGateway(cfg.dir)
})

afterAll(async () => {
  await gw.stop()
  await v1.stop()
  cfg.cleanup()
})

/** One request on a raw socket after `preamble`; the status line, or '' when closed without an answer. */
function rawGet(preamble: string): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(`${preamble}GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    socket.on('data', (d) => (text += d.toString()))
    socket.on('error', () => {})
    socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''))
  })
}

async function curl(...args: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(['curl', '-s', '--max-time', '5', ...args, `http://127.0.0.1:${port}/curl`], { stdout: 'pipe', stderr: 'ignore' })
  const out = await new Response(proc.stdout).text()
  return { code: await proc.exited, out }
}

test('the policy is accepted and the port requires a PROXY header', async () => {
  const admin = `http://127.0.0.1:${gw.adminPort}`
  const resources = (await (await fetch(`${admin}/resources`)).json()) as { kind: string; status?: { ancestors?: { conditions: { type: string; status: string }[] }[] } }[]
  const ctp = resources.find((r) => r.kind === 'ClientTrafficPolicy')!
  expect(ctp.status?.ancestors?.[0]?.conditions.find((c) => c.type === 'Accepted')?.status).toBe('True')
  const viaCurl = await curl('--haproxy-protocol', '--interface', '127.0.0.5')
  expect(viaCurl.code).toBe(0)
  expect(v1.requests.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.5')
  expect((await curl()).code).toBe(52)
  expect(await rawGet('PROXY TCP4 203.0.113.7 192.0.2.1 56324 80\r\n')).toBe('HTTP/1.1 200 OK')
  expect(v1.requests.at(-1)!.headers['x-forwarded-for']).toBe('203.0.113.7')
  expect(await rawGet('')).toBe('')
})

test('editing the policy applies to new connections', async () => {
  cfg.write('policy.yaml', policy('  enableProxyProtocol: false\n  proxyProtocol: { optional: true }\n'))
  await eventually(async () => (await rawGet('')) === 'HTTP/1.1 200 OK' || undefined, 5000, 'plain connections served')
  expect(await rawGet('PROXY TCP4 203.0.113.9 192.0.2.1 1 80\r\n')).toBe('HTTP/1.1 200 OK')
  expect(v1.requests.at(-1)!.headers['x-forwarded-for']).toBe('203.0.113.9')
  cfg.remove('policy.yaml')
  // Without the setting the header is just a malformed request line.
  await eventually(async () => (await rawGet('PROXY TCP4 203.0.113.9 192.0.2.1 1 80\r\n')).startsWith('HTTP/1.1 400') || undefined, 5000, 'header no longer read')
}, 15_000)
