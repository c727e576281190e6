/**
 * Issue 12, as a user would meet it: Portico started as a process on its defaults (only ports
 * chosen) with a config folder holding a TLS Secret behind an HTTPS listener, an Opaque Secret,
 * a Secret applied with kubectl's last-applied annotation and a broken Secret manifest. Every
 * TCP socket the process listens on is asked for a list of paths, over HTTP and HTTPS: no
 * response (body or headers) and no log line may carry the private key or a Secret value.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import http2 from 'node:http2'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { makeCertificate } from '../l4/support/servers.ts'
import { privateKeyNeedles } from '../support/secret-needles.ts'
import { ConfigDir, eventually, freePort } from './support.ts'
import { hasSs, listeningSockets, type ListeningSocket } from './sockets.ts'

const cert = makeCertificate(['secure.example.com'])
const OPAQUE = 'opaque-Zq8vKp3mWx7t-4f1d'
const STRING_DATA = 'stringdata-Hn2sLr9cQe5y-77ab'
const BROKEN = 'broken-manifest-Jd6uTf1oPa8n'
const b64 = (s: string) => Buffer.from(s).toString('base64')

/** Pieces of Secret material none of which may appear anywhere. */
const needles: [string, string][] = [
  ['opaque value', OPAQUE],
  ['opaque value (base64)', b64(OPAQUE)],
  ['stringData value', STRING_DATA],
  ['stringData value (base64)', b64(STRING_DATA)],
  ['broken manifest value', BROKEN],
  ...privateKeyNeedles(cert.keyPem, cert.certPem),
]
const leaksIn = (text: string) => needles.filter(([, n]) => text.includes(n)).map(([what]) => what)

const PATHS = [
  '/',
  '/resources',
  '/config',
  '/problems',
  '/metrics',
  '/healthz',
  '/readyz',
  '/config?x=1',
  '/resources?format=yaml',
  '/resources?kind=Secret',
  '/resources/',
  '/config/',
  '//resources',
  '/%72esources',
  '/resources/Secret/web/web-cert',
  '/api/v1/secrets',
  '/api/v1/namespaces/web/secrets/creds',
  '/debug',
  '/admin',
  '/nope',
  '/app/x',
]

let echo: EchoUpstream
let cfg: ConfigDir
let proc: ReturnType<typeof Bun.spawn>
let adminPort: number
let probePort: number
let httpPort: number
let httpsPort: number
let stderr: Promise<string>

function manifests(): Record<string, string> {
  const tlsSecret = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'web-cert', namespace: 'web' }, data: { 'tls.crt': b64(cert.certPem), 'tls.key': b64(cert.keyPem) } }
  const applied = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: 'applied',
      namespace: 'web',
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'applied', namespace: 'web' }, data: { password: b64(OPAQUE), 'tls.key': b64(cert.keyPem) } }) + '\n' },
    },
    data: { password: b64(OPAQUE), 'tls.key': b64(cert.keyPem) },
  }
  return {
    'gateway.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: portico }
spec: { controllerName: portico.dev/gateway-controller }
---
apiVersion: v1
kind: Namespace
metadata: { name: web }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: web }
spec:
  gatewayClassName: portico
  listeners:
    - { name: http, protocol: HTTP, port: ${httpPort} }
    - name: https
      protocol: HTTPS
      port: ${httpsPort}
      hostname: secure.example.com
      tls: { mode: Terminate, certificateRefs: [{ name: web-cert }] }
---
apiVersion: v1
kind: Service
metadata: { name: app, namespace: web }
spec: { ports: [{ name: http, port: 80, targetPort: ${echo.port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: app-1, namespace: web, labels: { kubernetes.io/service-name: app } }
addressType: IPv4
ports: [{ name: http, port: ${echo.port} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: app, namespace: web }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /app } }]
      backendRefs: [{ name: app, port: 80 }]
`,
    'secrets.yaml': [
      JSON.stringify(tlsSecret),
      JSON.stringify(applied),
      `apiVersion: v1
kind: Secret
type: Opaque
metadata: { name: creds, namespace: web }
data:
  password: ${b64(OPAQUE)}
stringData:
  apiKey: ${STRING_DATA}`,
      `apiVersion: v1
kind: ConfigMap
metadata: { name: ca, namespace: web }
data: { ca.crt: "not secret" }`,
    ].join('\n---\n'),
    // Secrets with a YAML error where their value is (the parser's messages would quote it)
    'broken-secret.yaml': `apiVersion: v1
kind: Secret
metadata: { name: broken, namespace: web }
stringData:
  token: *${BROKEN}
`,
    'broken-secret-2.yaml': `apiVersion: v1
kind: Secret
metadata: { name: broken-2, namespace: web }
stringData:
  tls.key: |${BROKEN}
    more
`,
  }
}

beforeAll(async () => {
  echo = startEcho('app')
  cfg = new ConfigDir()
  ;[adminPort, probePort, httpPort, httpsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
  for (const [name, text] of Object.entries(manifests())) cfg.write(name, text)
  // defaults except ports: admin on 127.0.0.1, probe socket on 0.0.0.0, listeners on 0.0.0.0, workers = cores
  proc = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', String(probePort)], { stdout: 'pipe', stderr: 'pipe' })
  stderr = new Response(proc.stderr as ReadableStream).text()
  await eventually(async () => (await fetch(`http://127.0.0.1:${probePort}/readyz`).then((r) => r.status, () => 0)) === 200, 15_000, 'ready')
  await eventually(async () => (await fetch(`http://127.0.0.1:${httpPort}/app/x`).then((r) => r.status, () => 0)) === 200, 5000, 'HTTP listener serving')
  await eventually(
    async () => (await fetch(`https://127.0.0.1:${httpsPort}/app/x`, { headers: { host: 'secure.example.com' }, tls: { rejectUnauthorized: false } }).then((r) => r.status, () => 0)) === 200,
    5000,
    'HTTPS listener serving',
  )
}, 30_000)

afterAll(async () => {
  proc?.kill('SIGTERM')
  await proc?.exited
  await echo?.stop()
  cfg?.cleanup()
})

interface Answer {
  readonly url: string
  readonly status: number
  readonly text: string
}

async function ask(url: string, init: RequestInit & { tls?: unknown } = {}): Promise<Answer | undefined> {
  try {
    const r = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(3000) } as RequestInit)
    const headers = [...r.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n')
    return { url, status: r.status, text: `${headers}\n\n${await r.text()}` }
  } catch {
    return undefined // not that protocol on this socket, or the socket closed on us
  }
}

/**
 * The same question over h2c (prior knowledge): the h2 servers behind each HTTP port
 * (dataplane/http2) listen on loopback and speak only HTTP/2. The answer's url says h2c://.
 */
async function askH2c(url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer | undefined> {
  const u = new URL(url.replace(/^h2c:/, 'http:'))
  const session = http2.connect(`http://${u.host}`)
  session.on('error', () => {})
  try {
    return await new Promise<Answer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 3000)
      const req = session.request({ ':method': init.method ?? 'GET', ':path': u.pathname, ...(init.headers?.host ? { ':authority': init.headers.host } : {}), ...Object.fromEntries(Object.entries(init.headers ?? {}).filter(([k]) => k !== 'host')) })
      let head: http2.IncomingHttpHeaders = {}
      let body = ''
      req.setEncoding('utf8')
      req.on('response', (h) => (head = h))
      req.on('data', (c: string) => (body += c))
      req.on('end', () => {
        clearTimeout(timer)
        const headers = Object.entries(head).map(([k, v]) => `${k}: ${String(v)}`).join('\n')
        resolve({ url, status: Number(head[':status'] ?? 0), text: `${headers}\n\n${body}` })
      })
      req.on('error', () => {
        clearTimeout(timer)
        resolve(undefined)
      })
      req.end()
    })
  } finally {
    session.destroy()
  }
}

/** Every socket of the process (ss), or without ss the ones known to be there. */
function sockets(): ListeningSocket[] {
  if (hasSs()) return listeningSockets(proc.pid)
  return [{ address: '127.0.0.1', port: adminPort }, ...[probePort, httpPort, httpsPort].map((port) => ({ address: '0.0.0.0', port }))]
}

function hostOf(s: ListeningSocket): string {
  if (s.address === '0.0.0.0' || s.address === '*') return '127.0.0.1'
  if (s.address === '::' || s.address === '::1') return '[::1]'
  return s.address.includes(':') ? `[${s.address}]` : s.address
}

test('no socket Portico listens on gives out a private key or Secret value, whatever the path', async () => {
  const all = sockets()
  const ports = new Set(all.map((s) => s.port))
  for (const p of [adminPort, probePort, httpPort, httpsPort]) expect(ports.has(p)).toBe(true)

  const answers: Answer[] = []
  const TLS = { rejectUnauthorized: false }
  await Promise.all(
    all.map(async (s) => {
      // which of HTTP and HTTPS this socket speaks (a wrong guess waits for the timeout, so ask once)
      const schemes: string[] = (await Promise.all((['http', 'https'] as const).map(async (scheme) => ((await ask(`${scheme}://${hostOf(s)}:${s.port}/`, { tls: TLS })) ? scheme : undefined)))).filter((x) => x !== undefined)
      if (schemes.length === 0 && (await askH2c(`h2c://${hostOf(s)}:${s.port}/`))) schemes.push('h2c')
      const requests: Promise<Answer | undefined>[] = []
      for (const scheme of schemes) {
        const send = (url: string, init: { method?: string; headers?: Record<string, string> }) => (scheme === 'h2c' ? askH2c(url, init) : ask(url, { ...init, tls: TLS }))
        for (const path of PATHS)
          for (const headers of [{}, { host: 'secure.example.com' }, { authorization: 'Bearer x' }] as Record<string, string>[])
            requests.push(send(`${scheme}://${hostOf(s)}:${s.port}${path}`, { headers }))
        for (const method of ['POST', 'HEAD', 'OPTIONS', 'DELETE']) requests.push(send(`${scheme}://${hostOf(s)}:${s.port}/config`, { method }))
      }
      for (const a of await Promise.all(requests)) if (a) answers.push(a)
    }),
  )
  // every socket spoke at least one of HTTP, HTTPS and h2c
  expect(new Set(answers.map((a) => Number(new URL(a.url).port))).size).toBe(all.length)
  // the views were reached: the admin socket answered them with the objects
  const resources = answers.find((a) => a.url === `http://127.0.0.1:${adminPort}/resources` && a.status === 200)
  expect(resources?.text).toContain('"web-cert"')
  expect(resources?.text).toContain('"creds"')
  expect(answers.find((a) => a.url === `http://127.0.0.1:${adminPort}/config` && a.status === 200)?.text).toContain('"keyPem":"[redacted]"')
  expect(answers.some((a) => a.url === `https://127.0.0.1:${httpsPort}/app/x` && a.status === 200)).toBe(true) // with Host: secure.example.com

  const leaking = answers.map((a) => ({ url: a.url, leaks: leaksIn(a.text) })).filter((a) => a.leaks.length > 0)
  expect(leaking).toEqual([])
}, 60_000)

test.skipIf(!hasSs())('the admin socket is loopback only; the probe socket is wildcard and serves probes and metrics only', async () => {
  const all = listeningSockets(proc.pid)
  const admin = all.filter((s) => s.port === adminPort)
  const probe = all.filter((s) => s.port === probePort)
  expect(admin.map((s) => s.address)).toEqual(['127.0.0.1'])
  expect(probe.map((s) => s.address)).toEqual(['0.0.0.0'])
  for (const path of ['/healthz', '/readyz']) {
    expect((await fetch(`http://127.0.0.1:${adminPort}${path}`)).status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${probePort}${path}`)).status).toBe(200)
  }
  expect(await (await fetch(`http://127.0.0.1:${probePort}/metrics`)).text()).toContain('portico_config_rebuilds_total')
  for (const path of ['/resources', '/config', '/problems', '/config?x=1', '/resources/', '/', '/nope']) expect((await fetch(`http://127.0.0.1:${probePort}${path}`)).status).toBe(404)
})

test('no wildcard-bound socket answers a config view', async () => {
  const wildcard = sockets().filter((s) => ['0.0.0.0', '*', '::'].includes(s.address))
  expect(wildcard.length).toBeGreaterThanOrEqual(2) // the probe socket and the listeners
  const answers = await Promise.all(
    wildcard.flatMap((s) =>
      ['/resources', '/config', '/problems'].flatMap((path) =>
        ['http', 'https'].flatMap((scheme) => ([{}, { host: 'secure.example.com' }] as Record<string, string>[]).map((headers) => ask(`${scheme}://127.0.0.1:${s.port}${path}`, { headers, tls: { rejectUnauthorized: false } }))),
      ),
    ),
  )
  for (const a of answers) {
    if (!a || a.status !== 200) continue
    // a 200 here could only be a backend's answer; it must not be one of the views
    expect(a.text).not.toContain('"kind":"Secret"')
    expect(a.text).not.toContain('"revision"')
    expect(a.text).not.toContain('"load"')
  }
}, 20_000)

test('Secrets appear in /resources as metadata, key names and a certificate summary', async () => {
  const all = (await (await fetch(`http://127.0.0.1:${adminPort}/resources`)).json()) as any[]
  const secret = (name: string) => all.find((o) => o.kind === 'Secret' && o.metadata.name === name)
  expect(secret('web-cert').redacted.keys).toEqual(['tls.crt', 'tls.key'])
  expect(secret('web-cert').redacted.certificate).toMatchObject({ subject: 'CN=secure.example.com', sans: ['DNS:secure.example.com'] })
  expect(secret('applied').metadata.annotations).toBeUndefined()
  expect(secret('applied').redacted.keys).toEqual(['password', 'tls.key'])
  expect(secret('creds').redacted).toEqual({ keys: ['apiKey', 'password'] })
  for (const name of ['web-cert', 'applied', 'creds']) {
    expect(secret(name).data).toBeUndefined()
    expect(secret(name).stringData).toBeUndefined()
  }
  expect(all.find((o) => o.kind === 'ConfigMap').data).toEqual({ 'ca.crt': 'not secret' })
  // the broken Secret is reported without its content
  const problems = (await (await fetch(`http://127.0.0.1:${adminPort}/problems`)).json()) as { load: { origin: string; message: string }[] }
  for (const file of ['broken-secret.yaml', 'broken-secret-2.yaml']) expect(problems.load.some((p) => p.origin.endsWith(file) && p.message.startsWith('YAML error'))).toBe(true)
})

test('the log carries no Secret value either', async () => {
  proc.kill('SIGTERM')
  expect(await proc.exited).toBe(0)
  const log = await stderr
  // the broken Secrets were logged, without their values
  expect(log).toContain('broken-secret.yaml')
  expect(log).toContain('broken-secret-2.yaml')
  expect(leaksIn(log)).toEqual([])
})
