/**
 * Smoke test of the built container image (run by .ci/run after docker/build-image.sh):
 *
 *   npx bun docker/smoke.ts [IMAGE]          # default localhost/portico:dev
 *
 * Starts the image the way docker/deploy runs it (uid 65532, read-only root filesystem without
 * podman's writable /tmp, every capability dropped, no-new-privileges), with its routes mounted
 * from a folder, on the host network so it reaches backends on the host. Checks the image
 * hygiene (labels, no shell, `--version`), then /readyz, a proxied HTTP request, a WebSocket echo
 * and a TCPRoute, and that `podman stop` drains an in-flight request and exits 0 within the
 * drain timeout. Prints one JSON line of measurements; any failed check exits 1.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const image = process.argv[2] ?? process.env.PORTICO_IMAGE ?? 'localhost/portico:dev'
const root = join(import.meta.dir, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
const DRAIN_TIMEOUT_S = 5
const SLOW_MS = 1500
const name = `portico-smoke-${process.pid}`
const failures: string[] = []
const measured: Record<string, number | string> = {}

function check(what: string, ok: boolean, detail = ''): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `  (${detail})` : ''}`)
  if (!ok) failures.push(what)
}

function podman(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync('podman', args, { encoding: 'utf8' })
  return { code: r.status ?? -1, out: r.stdout.trim(), err: r.stderr.trim() }
}

/** For commands that take a while: the backends live in this process, so it must not block. */
async function podmanAsync(...args: string[]): Promise<{ code: number; err: string }> {
  const p = Bun.spawn(['podman', ...args], { stdout: 'ignore', stderr: 'pipe' })
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited])
  return { code, err: err.trim() }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// --- backends on the host --------------------------------------------------------------------
const http = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req, server) {
    const url = new URL(req.url)
    if (url.pathname === '/ws' && server.upgrade(req)) return undefined
    if (url.pathname === '/slow') await sleep(SLOW_MS)
    return Response.json({ backend: 'host', path: url.pathname, host: req.headers.get('host') })
  },
  websocket: { message: (ws, message) => void ws.send(`echo: ${message}`) },
})
const tcp = createServer((socket) => socket.pipe(socket))
await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
const tcpBackendPort = (tcp.address() as AddressInfo).port

const [httpPort, tcpPort, adminPort, probePort] = [await freePort(), await freePort(), await freePort(), await freePort()]

// --- the routes folder mounted into the container -----------------------------------------------
const routes = mkdtempSync(join(tmpdir(), 'portico-smoke-'))
chmodSync(routes, 0o755) // readable by uid 65532 inside the container
const backendService = (svc: string, port: number) => `
apiVersion: v1
kind: Service
metadata: {name: ${svc}, namespace: default}
spec:
  ports: [{name: main, port: 80, targetPort: ${port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${svc}-host, namespace: default, labels: {kubernetes.io/service-name: ${svc}}}
addressType: IPv4
ports: [{name: main, port: ${port}, protocol: TCP}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
`
writeFileSync(
  join(routes, 'smoke.yaml'),
  `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: portico
  listeners:
    - {name: http, protocol: HTTP, port: ${httpPort}}
    - {name: tcp, protocol: TCP, port: ${tcpPort}, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: raw, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: tcp}]
  rules: [{backendRefs: [{name: raw, port: 80}]}]
---${backendService('web', http.port)}---${backendService('raw', tcpBackendPort)}`,
)
chmodSync(join(routes, 'smoke.yaml'), 0o644)

function cleanup(): void {
  podman('rm', '-f', '-t', '0', name)
  rmSync(routes, { recursive: true, force: true })
  void http.stop(true)
  tcp.close()
}

async function waitReady(deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${probePort}/readyz`).then((r) => r.status === 200, () => false)
    if (ok) return true
    if (podman('inspect', '--format', '{{.State.Running}}', name).out !== 'true') return false
    await sleep(50)
  }
  return false
}

function wsEcho(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const timer = setTimeout(() => reject(new Error('websocket timeout')), 5000)
    ws.onopen = () => ws.send('hello container')
    ws.onmessage = (event) => {
      clearTimeout(timer)
      resolve(String(event.data))
      ws.close()
    }
    ws.onerror = () => reject(new Error('websocket error'))
  })
}

function tcpEcho(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    let got = ''
    socket.setTimeout(5000, () => socket.destroy(new Error('tcp timeout')))
    socket.on('data', (chunk) => {
      got += chunk.toString()
      if (got.length >= text.length) {
        socket.end()
        resolve(got)
      }
    })
    socket.on('error', reject)
  })
}

/** Status line, uid, capabilities and no_new_privs of the container's main process, seen from the host. */
function processStatus(): Record<string, string> {
  const pid = podman('inspect', '--format', '{{.State.Pid}}', name).out
  const fields: Record<string, string> = {}
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const [k, v] = line.split(':\t')
    if (k && v !== undefined) fields[k] = v.trim()
  }
  return fields
}

try {
  // --- image hygiene ---------------------------------------------------------------------------
  const labels = JSON.parse(podman('image', 'inspect', '--format', '{{json .Labels}}', image).out || '{}') as Record<string, string>
  check('OCI label version = package.json version', labels['org.opencontainers.image.version'] === pkg.version, labels['org.opencontainers.image.version'])
  const revision = labels['org.opencontainers.image.revision'] ?? ''
  check('OCI label revision is a git commit', /^[0-9a-f]{40}$/.test(revision), revision)
  check('OCI label source', /^https:\/\//.test(labels['org.opencontainers.image.source'] ?? ''))
  check('image user is 65532', podman('image', 'inspect', '--format', '{{.Config.User}}', image).out === '65532:65532')
  const version = podman('run', '--rm', '--network', 'none', image, '--version')
  check('portico --version names the version and revision', version.out === `portico ${pkg.version} (${revision})`, version.out || version.err)
  for (const shell of ['/bin/sh', '/bin/bash', '/busybox/sh']) {
    const r = podman('run', '--rm', '--network', 'none', '--entrypoint', shell, image, '-c', 'true')
    check(`no shell: ${shell} does not run`, r.code !== 0 && /no such file or directory/.test(r.err))
  }
  measured.imageBytes = Number(podman('image', 'inspect', '--format', '{{.Size}}', image).out)

  // --- start it as docker/deploy does -----------------------------------------------------------
  const started = performance.now()
  const run = await podmanAsync(
    'run', '-d', '--name', name, '--network', 'host',
    '--user', '65532:65532', '--read-only', '--read-only-tmpfs=false', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '-v', `${routes}:/etc/portico/routes:ro`,
    image,
    '--config-dir', '/etc/portico/routes', '--admin-port', String(adminPort), '--probe-port', String(probePort),
    '--drain-timeout', String(DRAIN_TIMEOUT_S), '--workers', '2',
  )
  check('podman run', run.code === 0, run.err)
  const ready = await waitReady(Date.now() + 30_000)
  measured.readyMs = Math.round(performance.now() - started)
  check('/readyz answers 200', ready, `${measured.readyMs} ms after podman run`)
  if (!ready) throw new Error('not ready')

  const proc = processStatus()
  check('runs as uid 65532', proc.Uid?.split(/\s+/).every((u) => u === '65532') === true, proc.Uid)
  check('no capabilities', proc.CapEff === '0000000000000000' && proc.CapBnd === '0000000000000000', `${proc.CapEff} / ${proc.CapBnd}`)
  check('no_new_privs set', proc.NoNewPrivs === '1')

  // --- traffic -----------------------------------------------------------------------------------
  const res = await fetch(`http://127.0.0.1:${httpPort}/hello`)
  const body = (await res.json().catch(() => ({}))) as { backend?: string; path?: string }
  check('HTTPRoute: proxied to the backend on the host', res.status === 200 && body.backend === 'host' && body.path === '/hello', `${res.status} ${JSON.stringify(body)}`)
  const echoed = await wsEcho(`ws://127.0.0.1:${httpPort}/ws`).catch((err: Error) => err.message)
  check('WebSocket echo through the gateway', echoed === 'echo: hello container', echoed)
  const tcpReply = await tcpEcho(tcpPort, 'tcp through the container\n').catch((err: Error) => err.message)
  check('TCPRoute: bytes echoed by the TCP backend', tcpReply === 'tcp through the container\n', tcpReply)
  const metrics = await fetch(`http://127.0.0.1:${probePort}/metrics`).then((r) => r.status, () => 0)
  check('/metrics on the probe port', metrics === 200)

  // --- graceful stop: an in-flight request finishes, exit code 0, within the drain timeout -----
  const inflight = fetch(`http://127.0.0.1:${httpPort}/slow`).then((r) => String(r.status), (err: Error) => err.message)
  await sleep(200) // the request is at the backend now
  const stopStart = performance.now()
  const stop = await podmanAsync('stop', '-t', String(DRAIN_TIMEOUT_S * 3), name)
  measured.stopMs = Math.round(performance.now() - stopStart)
  check('podman stop', stop.code === 0, stop.err)
  const inflightResult = await inflight
  check('in-flight request completed during the drain', inflightResult === '200', inflightResult)
  const exitCode = podman('inspect', '--format', '{{.State.ExitCode}}', name).out
  check('exit code 0 after SIGTERM', exitCode === '0', `exit ${exitCode}`)
  check(`stopped within the drain timeout (${DRAIN_TIMEOUT_S} s)`, (measured.stopMs as number) < DRAIN_TIMEOUT_S * 1000, `${measured.stopMs} ms`)
} catch (err) {
  check('smoke test ran to the end', false, (err as Error).message)
} finally {
  if (failures.length) {
    const logs = podman('logs', '--tail', '40', name) // the gateway logs on stderr, access log lines on stdout
    console.log(`--- podman logs ${name} ---\n${logs.err}\n${logs.out}`)
  }
  cleanup()
}

console.log(JSON.stringify({ image, ...measured }))
console.log(failures.length ? `smoke: ${failures.length} check(s) failed` : 'smoke: all checks passed')
process.exit(failures.length ? 1 : 0)
