/**
 * Limits are settable globally: flags and environment (src/cli.ts) reach every data plane, the
 * in-thread one and the worker threads' (src/app.ts → worker-pool → worker.ts).
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { parseCli, UsageError } from '../../src/cli.ts'
import { startEcho } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route } from '../e2e/support.ts'

describe('limit flags', () => {
  test('defaults leave every limit to limits.ts', () => {
    expect(parseCli([], {}).limits).toEqual({})
  })

  test('flags beat the environment; sizes take units; seconds become milliseconds where the limit is in ms', () => {
    const o = parseCli(['--max-body-size', '10Mi', '--body-timeout=2.5', '--keepalive-timeout', '5', '--max-concurrent-requests', '0'], {
      MAX_BODY_SIZE: '1Ki',
      MAX_URI_SIZE: '4096',
      UPSTREAM_TIMEOUT: '30',
    })
    expect(o.limits).toEqual({
      maxBodyBytes: 10 * 1024 * 1024,
      maxRequestTargetBytes: 4096,
      maxConcurrentRequests: 0,
      keepAliveIdleSeconds: 5,
      bodyTimeoutMs: 2500,
      upstreamTimeoutMs: 30_000,
    })
  })

  test.each([
    [['--max-body-size', 'lots']],
    [['--max-body-size', '-1']],
    [['--keepalive-timeout', '0']],
    [['--keepalive-timeout', '300']],
    [['--max-concurrent-requests', '1.5']],
    [['--upstream-timeout', 'soon']],
    [['--max-header-size']],
  ])('rejects %p', (argv) => {
    expect(() => parseCli(argv, {})).toThrow(UsageError)
  })
})

describe('the flags reach the data plane', () => {
  const cfg = new ConfigDir()
  const echo = startEcho('backend')
  const procs: ReturnType<typeof Bun.spawn>[] = []

  afterAll(async () => {
    for (const p of procs) p.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.exited))
    await echo.stop()
    cfg.cleanup()
  })

  for (const workers of [1, 2]) {
    test(`--max-body-size 1Ki with --workers ${workers}: 413 over it, 200 within`, async () => {
      const port = await freePort()
      const adminPort = await freePort()
      cfg.write(`m${workers}.yaml`, baseManifests(port, { backend: echo.port }) + '---\n' + route('r', '/', 'backend'))
      const dir = `${cfg.dir}`
      const proc = Bun.spawn(
        [process.execPath, 'src/main.ts', '--config-dir', dir, '--admin-port', String(adminPort), '--probe-port', '0', '--admin-address', '127.0.0.1', '--bind-address', '127.0.0.1', '--workers', String(workers), '--log-level', 'error', '--max-body-size', '1Ki'],
        { stdout: 'inherit', stderr: 'inherit' },
      )
      procs.push(proc)
      await eventually(async () => (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status, () => 0)) === 200, 10_000, 'serving')
      expect((await fetch(`http://127.0.0.1:${port}/up`, { method: 'POST', body: 'x'.repeat(2048) })).status).toBe(413)
      expect((await fetch(`http://127.0.0.1:${port}/up`, { method: 'POST', body: 'x'.repeat(1024) })).status).toBe(200)
      proc.kill('SIGTERM')
      await proc.exited
      cfg.remove(`m${workers}.yaml`)
    }, 20_000)
  }
})
