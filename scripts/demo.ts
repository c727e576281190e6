#!/usr/bin/env bun
/**
 * `npm run demo`: starts two echo backends (v1 on :9081, v2 on :9082) and Portico on the
 * shipped routes/ folder (HTTP on :8080, admin API on 127.0.0.1:9901, probes and metrics on
 * :9902), shows a few requests, and keeps running until Ctrl-C. `--check` exits after the
 * requests (non-zero if any went wrong).
 */
import { startEcho } from './echo-backend.ts'

const check = process.argv.includes('--check')
const gatewayPort = 8080
const adminPort = Number(process.env.ADMIN_PORT ?? 9901)
const backends = [startEcho('echo-v1', 9081), startEcho('echo-v2', 9082)]
const gateway = Bun.spawn([process.execPath, 'src/main.ts', '--config-dir', 'routes', '--admin-port', String(adminPort), '--log-level', process.env.LOG_LEVEL ?? 'warn'], {
  cwd: `${import.meta.dir}/..`,
  stdout: 'inherit',
  stderr: 'inherit',
})

async function waitReady() {
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false)
    if (ok) return
    await Bun.sleep(100)
  }
  throw new Error('Portico did not become ready within 10 s')
}

async function show(title: string, path: string, headers: Record<string, string> = {}, expect: (r: Response, body: string) => boolean) {
  const r = await fetch(`http://127.0.0.1:${gatewayPort}${path}`, { headers, redirect: 'manual' })
  const body = await r.text()
  let summary = body
  try {
    const j = JSON.parse(body)
    summary = `service=${j.service} path=${j.path}`
  } catch {}
  const flags = Object.entries(headers).map(([k, v]) => `-H '${k}: ${v}' `).join('')
  const ok = expect(r, body)
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${title}\n     curl -s ${flags}http://127.0.0.1:${gatewayPort}${path}\n     -> ${r.status} ${r.headers.get('location') ? 'location=' + r.headers.get('location') + ' ' : ''}${r.headers.get('x-served-by') ? 'x-served-by=' + r.headers.get('x-served-by') + ' ' : ''}${summary.slice(0, 100)}`)
  return ok
}

let failures = 0
try {
  await waitReady()
  console.log('\nPortico is serving routes/ on :8080 (admin API on 127.0.0.1:%d, probes and metrics on :%d). Try these:\n', adminPort, adminPort + 1)
  const svc = (name: string) => (_: Response, b: string) => b.includes(`"service":"${name}"`)
  if (!(await show('default route goes to echo-v1', '/hello', {}, svc('echo-v1')))) failures++
  if (!(await show('header x-version: v2 picks echo-v2', '/hello', { 'x-version': 'v2' }, svc('echo-v2')))) failures++
  if (!(await show('/old/* redirects to /api/*', '/old/items', {}, (r) => r.status === 301 && r.headers.get('location')?.endsWith('/api/items') === true))) failures++
  const counts: Record<string, number> = {}
  for (let i = 0; i < 200; i++) {
    const j = (await (await fetch(`http://127.0.0.1:${gatewayPort}/api/items`)).json()) as { service: string }
    counts[j.service] = (counts[j.service] ?? 0) + 1
  }
  const v2 = (counts['echo-v2'] ?? 0) / 200
  const weightsOk = v2 > 0.08 && v2 < 0.35
  if (!weightsOk) failures++
  console.log(`${weightsOk ? 'ok  ' : 'FAIL'} /api/* is split 80/20 by weight: 200 requests -> ${JSON.stringify(counts)}`)
  console.log(`\n     curl -s http://127.0.0.1:${adminPort}/resources   # every object with its status`)
  console.log(`     curl -s http://127.0.0.1:${adminPort}/config      # the live IR (private keys redacted)`)
  console.log(`     curl -s http://127.0.0.1:${adminPort}/problems    # load errors and rejected snapshots`)
  console.log(`     curl -s http://127.0.0.1:${adminPort + 1}/metrics     # Prometheus; the probe port serves /healthz /readyz /metrics only`)
  console.log(`Edit a file in routes/ and Portico reloads it. Ctrl-C to stop.\n`)
} catch (err) {
  console.error(String(err))
  failures++
}

const stop = async (code: number) => {
  gateway.kill('SIGTERM')
  await gateway.exited
  for (const b of backends) b.stop(true)
  process.exit(code)
}
if (check) await stop(failures ? 1 : 0)
process.on('SIGINT', () => void stop(0))
process.on('SIGTERM', () => void stop(0))
