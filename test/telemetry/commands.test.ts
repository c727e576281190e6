/** portico status / routes / describe against a running gateway; validate offline. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCommand, validateDir } from '../../src/commands.ts'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route, startGateway } from '../e2e/support.ts'

let cfg: ConfigDir
let gw: Portico
let echo: EchoUpstream
let port: number

const capture = () => {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err }
}

beforeAll(async () => {
  echo = startEcho('echo')
  port = await freePort()
  cfg = new ConfigDir()
  cfg.write('all.yaml', baseManifests(port, { echo: echo.port }) + '---\n' + route('web', '/', 'echo') + '---\n' + route('broken', '/b', 'missing'))
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/`)).status === 200, 5000, 'route live')
})

afterAll(async () => {
  await gw.stop()
  await echo.stop()
  cfg.cleanup()
})

test('status lists gateways and listeners with attached routes and the broken route; exit 1', async () => {
  const c = capture()
  const code = await runCommand(['status', '--admin', `http://127.0.0.1:${gw.adminPort}`], {}, c.io)
  const text = c.out.join('\n')
  expect(text).toContain('Gateway default/gw')
  expect(text).toMatch(/listener http {2}HTTP :\d+ {2}routes=2/)
  expect(text).toContain('HTTPRoute default/broken')
  expect(text).toContain('BackendNotFound')
  expect(code).toBe(1)
})

test('routes prints a table; describe shows spec and status', async () => {
  const c = capture()
  expect(await runCommand(['routes', '--admin', `http://127.0.0.1:${gw.adminPort}`], {}, c.io)).toBe(0)
  expect(c.out[0]).toMatch(/^KIND\s+ROUTE\s+HOSTNAMES/)
  expect(c.out.some((l) => /HTTPRoute\s+default\/web\s+\*\s+gw\s+echo:80\s+True\s+True/.test(l))).toBe(true)
  const d = capture()
  expect(await runCommand(['describe', 'httproute', 'default/web', '--admin', `http://127.0.0.1:${gw.adminPort}`], {}, d.io)).toBe(0)
  expect(d.out.join('\n')).toContain('kind: HTTPRoute')
  expect(d.out.join('\n')).toContain('effective policies')
})

test('an unreachable admin API is a clear error (exit 2)', async () => {
  const c = capture()
  expect(await runCommand(['status', '--admin', 'http://127.0.0.1:1'], {}, c.io)).toBe(2)
  expect(c.err.join('\n')).toContain('cannot reach the admin API')
})

test('validate: 0 for good manifests, 1 with every problem printed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-validate-'))
  writeFileSync(join(dir, 'a.yaml'), baseManifests(8080, { echo: 9000 }) + '---\n' + route('web', '/', 'echo'))
  const good = capture()
  expect(validateDir(dir, 'portico.dev/gateway-controller', good.io)).toBe(0)
  expect(good.out.join('\n')).toContain('HTTPRoute/default/web parent gw: Accepted=True')
  writeFileSync(join(dir, 'b.yaml'), route('broken', '/b', 'missing') + '---\nkind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: { name: x\n')
  const bad = capture()
  expect(validateDir(dir, 'portico.dev/gateway-controller', bad.io)).toBe(1)
  const text = bad.out.join('\n')
  expect(text).toContain('ERROR HTTPRoute/default/broken parent gw: ResolvedRefs=False (BackendNotFound)')
  expect(text).toMatch(/ERROR b\.yaml/)
})
