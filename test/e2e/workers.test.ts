/** Multi-core mode: several worker threads share the listener ports and all get every snapshot. */
import { afterAll, expect, test } from 'bun:test'
import { startEcho } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route } from './support.ts'

const v1 = startEcho('v1')
const v2 = startEcho('v2')
const cfg = new ConfigDir()
let proc: ReturnType<typeof Bun.spawn> | undefined
afterAll(async () => {
  proc?.kill('SIGTERM')
  await proc?.exited
  await v1.stop()
  await v2.stop()
  cfg.cleanup()
})

/** Many requests, each on a fresh connection, so the kernel spreads them across workers. */
async function backendsOfFreshConnections(port: number, n: number, path = '/w'): Promise<Set<string>> {
  const seen = new Set<string>()
  await Promise.all(
    Array.from({ length: n }, async () => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' }, keepalive: false })
      seen.add(r.status === 200 ? ((await r.json()) as { name: string }).name : `status ${r.status}`)
    }),
  )
  return seen
}

test('--workers 2 serves on shared ports and every worker applies config changes', async () => {
  const port = await freePort()
  const adminPort = await freePort()
  cfg.write('m.yaml', baseManifests(port, { v1: v1.port, v2: v2.port }) + '---\n' + route('r', '/', 'v1'))
  proc = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', '0', '--workers', '2', '--log-level', 'warn'], { stdout: 'inherit', stderr: 'inherit' })
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200, 10_000, 'ready')
  expect([...(await backendsOfFreshConnections(port, 60))]).toEqual(['v1'])
  cfg.write('m.yaml', baseManifests(port, { v1: v1.port, v2: v2.port }) + '---\n' + route('r', '/', 'v2', 2))
  // once the change is live, no worker may still route to v1
  await eventually(async () => {
    const seen = await backendsOfFreshConnections(port, 60)
    return seen.size === 1 && seen.has('v2')
  }, 5000, 'all workers on v2')
  expect([...(await backendsOfFreshConnections(port, 60))]).toEqual(['v2'])
  const distinctClientPorts = new Set(v2.requests.map((r) => r.remotePort))
  expect(distinctClientPorts.size).toBeGreaterThan(1)

  // A route added next to an unchanged one: workers get the new rule and keep the one they hold
  // (snapshots travel as changes, snapshot-wire.ts).
  cfg.write('m.yaml', baseManifests(port, { v1: v1.port, v2: v2.port }) + '---\n' + route('r', '/', 'v2', 2) + '---\n' + route('extra', '/extra', 'v1', 3))
  await eventually(async () => {
    const seen = await backendsOfFreshConnections(port, 60, '/extra')
    return seen.size === 1 && seen.has('v1')
  }, 5000, 'all workers route /extra to v1')
  expect([...(await backendsOfFreshConnections(port, 60))]).toEqual(['v2'])
})
