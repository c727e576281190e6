/** --workers 2: each worker counts its own requests; the main thread's /metrics sums them. */
import { afterAll, expect, test } from 'bun:test'
import { startEcho } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route } from '../e2e/support.ts'

const echo = startEcho('echo')
const cfg = new ConfigDir()
let proc: ReturnType<typeof Bun.spawn> | undefined
afterAll(async () => {
  proc?.kill('SIGTERM')
  await proc?.exited
  await echo.stop()
  cfg.cleanup()
})

test('request counters of both workers are merged at scrape', async () => {
  const port = await freePort()
  const adminPort = await freePort()
  cfg.write('m.yaml', baseManifests(port, { echo: echo.port }) + '---\n' + route('r', '/', 'echo'))
  proc = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', '0', '--workers', '2', '--log-level', 'warn', '--access-log', 'off'], { stdout: 'inherit', stderr: 'inherit' })
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200, 10_000, 'ready')
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status, () => 0)) === 200, 5000, 'serving')
  const before = echo.requests.length
  // fresh connections, so the kernel spreads them over both workers
  await Promise.all(Array.from({ length: 60 }, () => fetch(`http://127.0.0.1:${port}/x`, { headers: { connection: 'close' }, keepalive: false }).then((r) => r.text())))
  const served = echo.requests.length // includes the readiness requests
  expect(served - before).toBe(60)
  const line = await eventually(async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
    const l = text.split('\n').find((x) => x.startsWith('portico_http_requests_total{') && x.includes('route="default/r"') && x.includes('code="200"'))
    return l && Number(l.slice(l.lastIndexOf(' ') + 1)) === served ? l : undefined
  }, 5000, 'all requests counted (workers export about once a second)')
  expect(line).toContain('backend="default/echo:80"')
})
