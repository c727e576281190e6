/**
 * OIDC login on the real thing: a real OpenID Connect provider (npm oidc-provider under Node:
 * discovery, JWKS, login and consent pages), headless Chromium (Debian chromium driven by
 * playwright-core), a real redis-server and two Portico processes reading the same
 * SecurityPolicy (each with its own redirectURL, as two replicas would have behind one host).
 * Visit a protected page → provider login form → back with a session → page served with the
 * ID token's claims → the other replica accepts the same session (Redis) → API clients get 401
 * → refresh before the access token expires → logout ends the session on both.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import type { Browser, Page } from 'playwright-core'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { RedisServer, redisAvailable } from '../support/redis-server.ts'
import { baseManifests, ConfigDir, eventually, freePort, httpRoute, startPorticoProcess, type PorticoProcess } from '../rate-limit/support.ts'

const CHROMIUM = '/usr/bin/chromium'
const SECRET = 'oidc-client-Secret-7f3a'
const ACCESS_TOKEN_TTL = 75 // s: the gateway refreshes 60 s before expiry, so after ~15 s

const ready = existsSync(CHROMIUM) && redisAvailable() && Bun.which('node') !== null

describe.skipIf(!ready)('oidc: browser login, two replicas on one Redis', () => {
  let redis: RedisServer
  let echo: EchoUpstream
  let provider: ReturnType<typeof Bun.spawn>
  const providerOut: string[] = []
  const replicas: PorticoProcess[] = []
  const dirs: ConfigDir[] = []
  const stderr: string[] = []
  let browser: Browser
  let page: Page
  const ports: number[] = []

  const policy = (port: number, providerPort: number) => `apiVersion: v1
kind: Secret
metadata: { name: oidc-client, namespace: default }
stringData: { client-secret: ${SECRET} }
---
apiVersion: gateway.portico.dev/v1alpha1
kind: SecurityPolicy
metadata: { name: login, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: app }]
  oidc:
    provider: { issuer: "http://127.0.0.1:${providerPort}" }
    clientID: portico
    clientSecret: { name: oidc-client }
    redirectURL: "http://localhost:${port}/app/callback"
    logoutPath: /app/logout
    scopes: [email]
    forwardAccessToken: true
    claimToHeaders: [{ header: x-user, claim: sub }, { header: x-email, claim: email }]
`

  beforeAll(async () => {
    redis = await RedisServer.start()
    echo = startEcho('app')
    ports.push(await freePort(), await freePort())
    const providerPort = await freePort()
    provider = Bun.spawn(['node', 'test/support/oidc-provider.mjs', String(providerPort), SECRET, ports.map((p) => `http://localhost:${p}/app/callback`).join(','), String(ACCESS_TOKEN_TTL)], { stdout: 'pipe', stderr: 'ignore' })
    void (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of provider.stdout as ReadableStream<Uint8Array>) providerOut.push(decoder.decode(chunk))
    })()
    await eventually(async () => (await fetch(`http://127.0.0.1:${providerPort}/.well-known/openid-configuration`)).ok, 10_000, 'provider up')
    for (const port of ports) {
      const cfg = new ConfigDir()
      dirs.push(cfg)
      cfg.write('base.yaml', baseManifests(port, { app: echo.port }))
      cfg.write('routes.yaml', [httpRoute('app', '/app', 'app'), httpRoute('open', '/open', 'app')].join('---\n'))
      cfg.write('policies.yaml', policy(port, providerPort))
      const p = await startPorticoProcess(cfg, port, ['--workers', '1', '--redis-url', redis.url])
      replicas.push(p)
      void new Response(p.proc.stderr as ReadableStream).text().then((t) => stderr.push(t))
      await eventually(async () => (await fetch(`${p.base}/app/`, { redirect: 'manual', headers: { accept: 'text/html' } })).status === 302, 10_000, 'policy live')
    }
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    })
    page = await (await browser.newContext()).newPage()
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await Promise.all(replicas.map((r) => r.stop()))
    provider?.kill()
    await redis?.stop()
    await echo?.stop()
    for (const d of dirs) d.cleanup()
    // the client secret and tokens never reach the log
    expect(stderr.join('')).not.toContain(SECRET)
  })

  const app = (i: number, path = '/app/') => `http://localhost:${ports[i]}${path}`
  const seenBy = async () => JSON.parse((await page.textContent('body')) ?? '{}') as { path: string; headers: Record<string, string> }

  test('a protected page sends the browser to the provider; after login it is served with the ID token claims', async () => {
    await page.goto(app(0, '/app/orders?page=2'))
    expect(page.url()).toContain(`127.0.0.1`)
    // oidc-provider's development login form, then its consent form
    await page.fill('input[name=login]', 'alice')
    await page.fill('input[name=password]', 'anything')
    await page.click('button[type=submit]')
    await page.waitForLoadState()
    if (page.url().includes('/interaction/')) await page.click('button[type=submit]')
    await page.waitForURL(app(0, '/app/orders?page=2'), { timeout: 10_000 })
    const seen = await seenBy()
    expect(seen.path).toBe('/app/orders?page=2')
    expect(seen.headers['x-user']).toBe('alice')
    expect(seen.headers['x-email']).toBe('alice@example.test')
    expect(seen.headers.authorization).toMatch(/^Bearer .+/)
    // the session cookie stays between browser and gateway
    expect(seen.headers.cookie ?? '').not.toContain('portico-session')
    const cookies = await page.context().cookies(app(0))
    const session = cookies.find((c) => c.name.startsWith('portico-session-'))!
    expect(session.httpOnly).toBe(true)
    expect(session.value.length).toBeLessThan(200) // a sealed session id: the tokens are in Redis
  }, 30_000)

  test('the other replica accepts the same session (Redis), no login', async () => {
    await page.goto(app(1, '/app/profile'))
    expect(page.url()).toBe(app(1, '/app/profile'))
    expect((await seenBy()).headers['x-user']).toBe('alice')
  })

  test('API clients without a session get 401; browsers a 302 to the provider; a forged cookie is no session', async () => {
    const api = await fetch(app(0), { redirect: 'manual' })
    expect(api.status).toBe(401)
    expect(api.headers.get('www-authenticate')).toBe('Bearer realm="portico"')
    const html = await fetch(app(0), { redirect: 'manual', headers: { accept: 'text/html' } })
    expect(html.status).toBe(302)
    const location = new URL(html.headers.get('location')!)
    expect(location.pathname).toBe('/auth')
    expect(location.searchParams.get('code_challenge_method')).toBe('S256')
    expect(location.searchParams.get('state')).toBeTruthy()
    expect(location.searchParams.get('nonce')).toBeTruthy()
    const name = (await page.context().cookies(app(0))).find((c) => c.name.startsWith('portico-session-'))!.name
    expect((await fetch(app(0), { redirect: 'manual', headers: { cookie: `${name}=forged` } })).status).toBe(401)
    expect((await fetch(app(0, '/open/'))).status).toBe(200)
  })

  test('the tokens are refreshed before the access token expires', async () => {
    const before = (await seenBy()).headers.authorization
    const refreshes = () => providerOut.join('').split('\n').filter((l) => l.includes('"refresh_token"')).length
    const had = refreshes()
    await Bun.sleep((ACCESS_TOKEN_TTL - 60 + 2) * 1000)
    await page.goto(app(0, '/app/after-refresh'))
    const after = await seenBy()
    expect(after.headers['x-user']).toBe('alice')
    expect(after.headers.authorization).not.toBe(before)
    expect(refreshes()).toBe(had + 1)
    // the refreshed session is the one both replicas see
    await page.goto(app(1, '/app/again'))
    expect((await seenBy()).headers.authorization).toBe(after.headers.authorization)
  }, 40_000)

  test('logout ends the session on both replicas and goes to the provider', async () => {
    const cookie = (await page.context().cookies(app(0))).find((c) => c.name.startsWith('portico-session-'))!
    const res = await fetch(app(0, '/app/logout'), { redirect: 'manual', headers: { cookie: `${cookie.name}=${cookie.value}` } })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toContain('/session/end')
    expect(res.headers.get('location')).toContain('id_token_hint=')
    expect(res.headers.get('set-cookie')).toContain('Max-Age=0')
    // the old cookie, replayed, opens nothing anywhere
    for (const i of [0, 1]) expect((await fetch(app(i), { redirect: 'manual', headers: { cookie: `${cookie.name}=${cookie.value}` } })).status).toBe(401)
  })
})
