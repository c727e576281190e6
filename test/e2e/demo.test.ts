/** The README's first command: the shipped routes/ folder with the demo backends must work. */
import { expect, test } from 'bun:test'

test('npm run demo -- --check passes on the shipped routes/', async () => {
  const p = Bun.spawn([process.execPath, 'scripts/demo.ts', '--check'], { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ADMIN_PORT: '19901' } })
  const [code, out] = await Promise.all([p.exited, new Response(p.stdout).text()])
  if (code !== 0) console.error(out, await new Response(p.stderr).text())
  expect(code).toBe(0)
  expect(out).not.toContain('FAIL')
  expect(out).toContain('ok   header x-version: v2 picks echo-v2')
})
