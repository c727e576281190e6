/**
 * Graceful shutdown of the real process: SIGTERM turns readiness false, stops accepting,
 * lets the in-flight request finish, and exits 0.
 */
import { afterAll, expect, test } from 'bun:test'
import { startEcho } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route } from './support.ts'

const echo = startEcho('slow')
const cfg = new ConfigDir()
afterAll(async () => {
  await echo.stop()
  cfg.cleanup()
})

test('SIGTERM drains: readiness 503 first, in-flight request completes, new connections refused, exit 0', async () => {
  const port = await freePort()
  const adminPort = await freePort()
  cfg.write('m.yaml', baseManifests(port, { slow: echo.port }) + '---\n' + route('r', '/', 'slow'))
  const proc = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', '0', '--shutdown-delay', '0.3', '--log-level', 'warn'], { stdout: 'inherit', stderr: 'inherit' })
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200, 10_000, 'ready')
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status, () => 0)) === 200, 5000, 'serving')

  const inFlight = fetch(`http://127.0.0.1:${port}/slow?delay=800`)
  await eventually(() => echo.requests.some((r) => r.path.startsWith('/slow')) || undefined, 5000, 'request reached backend')
  proc.kill('SIGTERM')
  // during the shutdown delay the listener still serves but readiness already says no
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 503, 2000, 'readyz 503')
  const res = await inFlight
  expect(res.status).toBe(200)
  await res.arrayBuffer()
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/`).then(() => false, () => true)), 5000, 'listener closed')
  expect(await proc.exited).toBe(0)
})
