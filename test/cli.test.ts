import { describe, expect, test } from 'bun:test'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseCli, readAdminTokenFile, UsageError } from '../src/cli.ts'

describe('parseCli', () => {
  test('defaults', () => {
    const o = parseCli([], {})
    expect(o.configDir).toBe('routes/')
    expect(o.adminPort).toBe(9901)
    expect(o.controllerName).toBe('portico.dev/gateway-controller')
    expect(o.logLevel).toBe('info')
    expect(o.adminAddress).toBe('127.0.0.1')
    expect(o.probePort).toBe(9902)
    expect(o.probeAddress).toBe('0.0.0.0')
    expect(o.adminTokenFile).toBeUndefined()
    expect(o.adminTokenSecret).toBeUndefined()
  })
  test('admin and probe sockets: probe port follows the admin port, 0 stays 0, off turns it off', () => {
    expect(parseCli(['--admin-port', '1234'], {}).probePort).toBe(1235)
    expect(parseCli(['--admin-port', '0'], {}).probePort).toBe(0)
    expect(parseCli(['--probe-port', 'off'], {}).probePort).toBeUndefined()
    expect(parseCli([], { PROBE_PORT: 'off' }).probePort).toBeUndefined()
    expect(parseCli([], { PROBE_PORT: '7000', PROBE_ADDRESS: '::' })).toMatchObject({ probePort: 7000, probeAddress: '::' })
    expect(parseCli(['--admin-address', '::1'], {}).adminAddress).toBe('::1')
    expect(parseCli(['--admin-address', 'localhost'], {}).adminAddress).toBe('localhost')
    expect(parseCli(['--admin-address', '0.0.0.0', '--admin-token-file', '/t'], {})).toMatchObject({ adminAddress: '0.0.0.0', adminTokenFile: '/t' })
    expect(parseCli([], { ADMIN_ADDRESS: '10.0.0.5', ADMIN_TOKEN_SECRET: 'portico-system/admin-token' })).toMatchObject({ adminTokenSecret: 'portico-system/admin-token' })
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
    [['--admin-address', '0.0.0.0']],
    [['--admin-address', '::']],
    [['--admin-address', '10.1.2.3']],
    [['--admin-address', 'example.com', '--admin-token-file', '/t']],
    [['--admin-address', '127.0.0.1:9901']],
    [['--probe-address', 'any']],
    [['--probe-port', '70000']],
    [['--probe-port', 'no']],
    [['--admin-port', '9901', '--probe-port', '9901']],
    [['--admin-port', '65535']],
    [['--admin-token-secret', 'no-slash']],
    [['--admin-token-file', '/t', '--admin-token-secret', 'a/b']],
  ])('rejects %p', (argv) => {
    expect(() => parseCli(argv, {})).toThrow(UsageError)
  })
  test('a non-loopback admin address without a token says what to do', () => {
    expect(() => parseCli([], { ADMIN_ADDRESS: '0.0.0.0' })).toThrow(/not loopback.*--admin-token-file or --admin-token-secret/)
  })
})

describe('readAdminTokenFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-token-'))
  test('trims the token', () => {
    writeFileSync(join(dir, 'ok'), '  tok-123\n')
    expect(readAdminTokenFile(join(dir, 'ok'))).toBe('tok-123')
  })
  test.each([['missing', null], ['empty', ''], ['blank', ' \n\t\n'], ['two words', 'a b\n']])('rejects a %s file', (name, content) => {
    if (content !== null) writeFileSync(join(dir, name), content)
    expect(() => readAdminTokenFile(join(dir, name))).toThrow(UsageError)
  })
})

/** Runs main.ts; returns its exit code and stderr (it must exit by itself, so no listener may start). */
async function runMain(args: string[], env: Record<string, string> = {}): Promise<{ code: number; err: string }> {
  const p = Bun.spawn([process.execPath, 'src/main.ts', ...args], { stderr: 'pipe', stdout: 'pipe', env: { ...process.env, ...env } })
  const timer = setTimeout(() => p.kill(), 10_000)
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()])
  clearTimeout(timer)
  return { code, err }
}

describe('main: bad admin settings exit 2 with one line, before anything starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-token-main-'))
  const unreadable = join(dir, 'unreadable')
  writeFileSync(unreadable, 'tok\n')
  chmodSync(unreadable, 0o000)
  writeFileSync(join(dir, 'empty'), '\n')
  test.each([
    ['non-loopback --admin-address without a token', ['--admin-address', '0.0.0.0'], {}, 'not loopback'],
    ['non-loopback ADMIN_ADDRESS without a token', [], { ADMIN_ADDRESS: '0.0.0.0' }, 'not loopback'],
    ['a bad --admin-address', ['--admin-address', 'nonsense'], {}, '--admin-address must be an IPv4 or IPv6 address'],
    ['a bad --probe-address', ['--probe-address', '300.1.1.1'], {}, '--probe-address must be an IPv4 or IPv6 address'],
    ['a missing token file', ['--admin-token-file', join(dir, 'missing')], {}, 'cannot read it (ENOENT)'],
    ['an empty token file', ['--admin-address', '0.0.0.0', '--admin-token-file', join(dir, 'empty')], {}, 'is empty'],
    // root reads any file whatever its mode: a directory is unreadable as a file for everyone
    ['an unreadable token file', ['--admin-token-file', process.getuid?.() === 0 ? dir : unreadable], {}, 'cannot read it'],
  ] as [string, string[], Record<string, string>, string][])('%s', async (_name, args, env, message) => {
    const { code, err } = await runMain([...args, '--config-dir', dir, '--admin-port', '0'], env)
    expect(code).toBe(2)
    expect(err.trim().split('\n')).toHaveLength(1)
    expect(err).toContain(message)
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
