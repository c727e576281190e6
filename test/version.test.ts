/** `portico --version`: the package.json version and the git revision (baked into container builds). */
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dir, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }

async function version(env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const p = Bun.spawn([process.execPath, 'src/main.ts', '--version'], { cwd: root, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, PORTICO_REVISION: '', ...env } })
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited])
  return { code, out }
}

test('prints the package version and the checkout revision, exits 0, starts nothing', async () => {
  const git = Bun.spawnSync(['git', 'rev-parse', 'HEAD'], { cwd: root, stdout: 'pipe', stderr: 'ignore' })
  const revision = git.exitCode === 0 ? git.stdout.toString().trim() : 'unknown revision'
  expect(await version()).toEqual({ code: 0, out: `portico ${pkg.version} (${revision})\n` })
})

test('a baked revision (the container build defines process.env.PORTICO_REVISION) wins', async () => {
  expect(await version({ PORTICO_REVISION: 'abc123' })).toEqual({ code: 0, out: `portico ${pkg.version} (abc123)\n` })
})
