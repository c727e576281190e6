/**
 * Local rate limits on the real process with --workers 2: the workers share one table, so a
 * limit of 30 per minute lets exactly 30 requests through whichever worker the kernel hands
 * each connection to; a change to an unrelated Service (a new snapshot in every worker) and an
 * edit of the policy's limit keep the count.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { awayFromWindowEdge, baseManifests, ConfigDir, eventually, freePort, get, httpRoute, rateLimitPolicy, startPorticoProcess, type PorticoProcess } from './support.ts'

const LOCAL = (requests: number) => `local:
  rules:
  - clientSelectors:
    - headers: [{name: x-user, type: Distinct}]
    limit: {requests: ${requests}, unit: Minute}`

let echo: EchoUpstream
let other: EchoUpstream
let cfg: ConfigDir
let gw: PorticoProcess

beforeAll(async () => {
  echo = startEcho('echo')
  other = startEcho('other')
  const port = await freePort()
  cfg = new ConfigDir()
  cfg.write('base.yaml', baseManifests(port, { echo: echo.port }))
  cfg.write('routes.yaml', httpRoute('api', '/api', 'echo'))
  cfg.write('policy.yaml', rateLimitPolicy('local-per-user', 'api', LOCAL(30)))
  gw = await startPorticoProcess(cfg, port, ['--workers', '2'])
  await eventually(async () => (await get(gw.base, '/api/x', { 'x-user': 'warm' })).status === 200, 10_000, 'route live')
}, 30_000)

afterAll(async () => {
  await gw.stop()
  await echo.stop()
  await other.stop()
  cfg.cleanup()
}, 20_000)

const revision = async () => Number((await (await fetch(`${gw.probe}/metrics`)).text()).match(/^portico_config_revision (\d+)/m)?.[1])

test('30 per minute per user with --workers 2: exactly 30 of 45 pass; an unrelated Service change and a raised limit keep the count', async () => {
  await awayFromWindowEdge(60, 10)
  const user = `u-${Math.random()}`
  const statuses: number[] = []
  // fresh connections, 5 at a time: the kernel spreads them over both workers
  for (let i = 0; i < 45; i += 5) statuses.push(...(await Promise.all(Array.from({ length: 5 }, () => get(gw.base, '/api/x', { 'x-user': user })))).map((r) => r.status))
  expect(statuses.filter((s) => s === 200).length).toBe(30)
  expect(statuses.filter((s) => s === 429).length).toBe(15)
  expect((await get(gw.base, '/api/x', { 'x-user': `${user}-2` })).status).toBe(200)

  // an unrelated Service appears: every worker gets a new snapshot; the bucket is untouched
  const before = await revision()
  cfg.write('other.yaml', baseManifests(await freePort(), { other: other.port }).split('---\n').slice(2).join('---\n'))
  await eventually(async () => (await revision()) > before, 5000, 'new snapshot live')
  for (let i = 0; i < 6; i++) expect((await get(gw.base, '/api/x', { 'x-user': user })).status).toBe(429)

  // the limit raised to 60: the 51 counted so far stay counted (an edited limit keeps the count)
  const before2 = await revision()
  cfg.write('policy.yaml', rateLimitPolicy('local-per-user', 'api', LOCAL(60)))
  await eventually(async () => (await revision()) > before2, 5000, 'raised limit live')
  const more: number[] = []
  for (let i = 0; i < 12; i++) more.push((await get(gw.base, '/api/x', { 'x-user': user })).status)
  // 51 counted, 60 allowed: 9 more pass
  expect(more.filter((s) => s === 200).length).toBe(9)
}, 30_000)
