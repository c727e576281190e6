/**
 * The admin dashboard in headless Chromium (Debian `chromium` + playwright-core): it loads, its
 * numbers move when traffic flows, and a broken manifest shows up under configuration problems.
 * A screenshot is saved as a test artifact (ARTIFACTS_DIR, default test-artifacts/).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Portico } from '../../src/app.ts'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { baseManifests, ConfigDir, eventually, freePort, route, startGateway } from '../e2e/support.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = process.env.ARTIFACTS_DIR ?? join(import.meta.dir, '../../test-artifacts')

let cfg: ConfigDir
let gw: Portico
let echo: EchoUpstream
let port: number
let browser: import('playwright-core').Browser | undefined

beforeAll(async () => {
  echo = startEcho('echo')
  port = await freePort()
  cfg = new ConfigDir()
  cfg.write('all.yaml', baseManifests(port, { echo: echo.port }) + '---\n' + route('web', '/', 'echo'))
  gw = await startGateway(cfg.dir)
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/`)).status === 200, 5000, 'route live')
  if (!existsSync(CHROMIUM)) return
  const { chromium } = await import('playwright-core')
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
})

afterAll(async () => {
  await browser?.close()
  await gw.stop()
  await echo.stop()
  cfg.cleanup()
})

test.skipIf(!existsSync(CHROMIUM))('the dashboard shows gateways, live route numbers and a broken manifest', async () => {
  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } })
  await page.goto(`http://127.0.0.1:${gw.adminPort}/dashboard?interval=500`)
  await page.waitForSelector('#gateways tbody tr')
  expect(await page.textContent('#gateways')).toContain('default/gw')
  await page.waitForSelector('tr[data-route="default/web"]')
  const count = async () => Number(await page.textContent('tr[data-route="default/web"] .count'))
  const before = await count()
  // traffic, and a second round so the rate is measured between two reads
  const pump = async () => {
    for (let i = 0; i < 40; i++) await fetch(`http://127.0.0.1:${port}/x`)
  }
  await pump()
  await eventually(async () => ((await count()) >= before + 40 ? true : undefined), 5000, 'request count on the page')
  const pumping = pump()
  await eventually(async () => (Number(await page.textContent('tr[data-route="default/web"] .rps')) > 0 ? true : undefined), 5000, 'request rate on the page')
  await pumping
  expect(await page.textContent('tr[data-route="default/web"] .p50')).toMatch(/^\d+\.\d+$/)
  expect(Number(await page.textContent('#count-total'))).toBeGreaterThanOrEqual(40)
  // a broken manifest appears under configuration problems
  cfg.write('broken.yaml', 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: oops\n  spec: [\n')
  await eventually(async () => ((await page.textContent('#problems'))!.includes('broken.yaml') ? true : undefined), 8000, 'broken manifest on the page')
  expect(Number(await page.textContent('#problem-count'))).toBeGreaterThanOrEqual(1)
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
  await page.close()
})
