import { describe, expect, test } from 'bun:test'
import { parseCli, UsageError } from '../src/cli.ts'

describe('parseCli', () => {
  test('defaults', () => {
    const o = parseCli([], {})
    expect(o.configDir).toBe('routes/')
    expect(o.adminPort).toBe(9901)
    expect(o.controllerName).toBe('portico.dev/gateway-controller')
    expect(o.logLevel).toBe('info')
  })
  test('flags beat environment, both forms of flags work', () => {
    const o = parseCli(['--config-dir', '/x', '--admin-port=1234', '--log-level', 'debug'], { CONFIG_DIR: '/env', ADMIN_PORT: '99', GATEWAY_CONTROLLER_NAME: 'a.b/c' })
    expect(o.configDir).toBe('/x')
    expect(o.adminPort).toBe(1234)
    expect(o.controllerName).toBe('a.b/c')
    expect(o.logLevel).toBe('debug')
  })
  test.each([
    [['--nope']],
    [['--admin-port', 'abc']],
    [['--admin-port', '70000']],
    [['--log-level', 'loud']],
    [['--config-dir']],
    [['--controller-name', 'no-slash']],
  ])('rejects %p', (argv) => {
    expect(() => parseCli(argv, {})).toThrow(UsageError)
  })
})

test('main exits 2 with a one-line error on a bad flag', async () => {
  const p = Bun.spawn([process.execPath, 'src/main.ts', '--bogus'], { stderr: 'pipe', stdout: 'pipe' })
  const code = await p.exited
  const err = await new Response(p.stderr).text()
  expect(code).toBe(2)
  expect(err.trim().split('\n')).toHaveLength(1)
  expect(err).toContain('--bogus')
})
