/**
 * The shipped artifact: `bun build --compile` (as the Dockerfile runs it) produces one binary
 * that serves with data-plane worker threads. There is no Docker engine here, so the binary
 * itself is what gets tested.
 */
import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEcho } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route } from './support.ts'

const out = mkdtempSync(join(tmpdir(), 'portico-bin-'))
const echo = startEcho('v1')
const cfg = new ConfigDir()
afterAll(async () => {
  await echo.stop()
  cfg.cleanup()
  rmSync(out, { recursive: true, force: true })
})

test('the compiled binary serves a route with two workers and exits 0 on SIGTERM', async () => {
  const binary = join(out, 'portico')
  const build = Bun.spawnSync([process.execPath, 'build', '--compile', 'src/main.ts', 'src/worker.ts', '--outfile', binary], { stdout: 'pipe', stderr: 'pipe' })
  expect(build.exitCode).toBe(0)
  const port = await freePort()
  const adminPort = await freePort()
  cfg.write('m.yaml', baseManifests(port, { v1: echo.port }) + '---\n' + route('r', '/', 'v1'))
  const proc = Bun.spawn([binary, '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', '0', '--workers', '2', '--log-level', 'warn'], { stdout: 'inherit', stderr: 'inherit', cwd: out })
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0)) === 200, 10_000, 'ready')
  const r = await fetch(`http://127.0.0.1:${port}/compiled`)
  expect(r.status).toBe(200)
  expect(((await r.json()) as { name: string }).name).toBe('v1')
  proc.kill('SIGTERM')
  expect(await proc.exited).toBe(0)
})
