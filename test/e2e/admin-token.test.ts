/**
 * The admin token, on the real process: a wide admin bind with --admin-token-file, and a token
 * taken from a Secret as it arrives (config views closed with 503 until then). Probes and
 * /metrics never need it. (Refusals at start, exit code 2, are in test/cli.test.ts.)
 */
import { afterAll, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { baseManifests, ConfigDir, eventually, freePort } from './support.ts'

const dirs: ConfigDir[] = []
const procs: ReturnType<typeof Bun.spawn>[] = []
afterAll(async () => {
  for (const p of procs) p.kill('SIGTERM')
  await Promise.all(procs.map((p) => p.exited))
  for (const d of dirs) d.cleanup()
})

const VIEWS = ['/resources', '/config', '/problems']
const status = (url: string, token?: string) => fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }).then((r) => r.status, () => 0)

async function start(args: string[]): Promise<{ admin: string; probe: string; cfg: ConfigDir }> {
  const [adminPort, probePort, port] = await Promise.all([freePort(), freePort(), freePort()])
  const cfg = new ConfigDir()
  dirs.push(cfg)
  cfg.write('base.yaml', baseManifests(port, {}))
  const proc = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', cfg.dir, '--admin-port', String(adminPort), '--probe-port', String(probePort), '--workers', '1', '--log-level', 'warn', ...args], {
    stdout: 'inherit',
    stderr: 'inherit',
  })
  procs.push(proc)
  const probe = `http://127.0.0.1:${probePort}`
  await eventually(async () => (await status(`${probe}/readyz`)) === 200, 10_000, 'ready')
  return { admin: `http://127.0.0.1:${adminPort}`, probe, cfg }
}

test('--admin-address 0.0.0.0 with --admin-token-file: 401 without or with a wrong token, 200 with it; probes open', async () => {
  const tokenDir = new ConfigDir()
  dirs.push(tokenDir)
  const tokenFile = join(tokenDir.dir, 'admin-token')
  writeFileSync(tokenFile, 'e2e-token-Vb7Qm2\n')
  const { admin, probe } = await start(['--admin-address', '0.0.0.0', '--admin-token-file', tokenFile])
  for (const view of VIEWS) {
    const r = await fetch(`${admin}${view}`)
    expect(r.status).toBe(401)
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="portico-admin"')
    expect(await status(`${admin}${view}`, 'wrong')).toBe(401)
    expect(await status(`${admin}${view}?x=1`, 'e2e-token-Vb7Qm')).toBe(401)
    expect(await status(`${admin}${view}`, 'e2e-token-Vb7Qm2')).toBe(200)
  }
  for (const base of [admin, probe]) for (const path of ['/healthz', '/readyz', '/metrics']) expect(await status(`${base}${path}`)).toBe(200)
  for (const view of VIEWS) expect(await status(`${probe}${view}`, 'e2e-token-Vb7Qm2')).toBe(404)
}, 20_000)

test('--admin-token-secret: 503 until the Secret arrives, then its token; a changed Secret changes the token', async () => {
  const { admin, probe, cfg } = await start(['--admin-token-secret', 'default/admin-token'])
  for (const view of VIEWS) expect(await status(`${admin}${view}`, 'anything')).toBe(503)
  expect(await status(`${probe}/readyz`)).toBe(200)
  const secret = (token: string) => `apiVersion: v1\nkind: Secret\nmetadata: { name: admin-token, namespace: default }\ndata: { token: ${Buffer.from(token + '\n').toString('base64')} }\n`
  cfg.write('token.yaml', secret('from-secret-1'))
  await eventually(async () => (await status(`${admin}/resources`, 'from-secret-1')) === 200, 5000, 'token from the Secret accepted')
  expect(await status(`${admin}/config`)).toBe(401)
  expect(await status(`${admin}/config`, 'from-secret-2')).toBe(401)
  // the token Secret itself is shown like any Secret: key names only
  const body = await (await fetch(`${admin}/resources`, { headers: { authorization: 'Bearer from-secret-1' } })).text()
  expect(body).toContain('"admin-token"')
  expect(body).not.toContain('from-secret-1')
  expect(body).not.toContain(Buffer.from('from-secret-1\n').toString('base64'))
  cfg.write('token.yaml', secret('from-secret-2'))
  await eventually(async () => (await status(`${admin}/config`, 'from-secret-2')) === 200, 5000, 'rotated token accepted')
  expect(await status(`${admin}/config`, 'from-secret-1')).toBe(401)
}, 20_000)
