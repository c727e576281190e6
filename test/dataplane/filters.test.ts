import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEcho, type EchoUpstream } from '../support/echo-upstream.ts'
import { startDataplane, type Running } from './harness.ts'
import { backend, pool, rule, simple } from './ir.ts'
import { replacePrefix } from '../../src/dataplane/http/filters/url-rewrite.ts'
import type { HttpFilter, HttpRule } from '../../src/ir/types.ts'

let echo: EchoUpstream
let mirror: EchoUpstream
let gw: Running

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } })
const redirect = (path: string, action: Partial<Extract<HttpRule['action'], { kind: 'redirect' }>>): HttpRule =>
  rule({ match: prefix(path), action: { kind: 'redirect', statusCode: 302, ...action } })

beforeAll(async () => {
  echo = startEcho('main')
  mirror = startEcho('mirror')
  const cors: HttpFilter = {
    type: 'CORS',
    allowOrigins: ['https://www.foo.com', 'https://*.bar.com'],
    allowMethods: ['GET', 'OPTIONS'],
    allowHeaders: ['x-header-1', 'x-header-2'],
    exposeHeaders: ['x-header-3'],
    allowCredentials: true,
    maxAgeSeconds: 3600,
  }
  gw = await startDataplane(
    simple(0, [
      rule({
        match: prefix('/headers'),
        filters: [
          { type: 'RequestHeaderModifier', set: [['X-Set', 'set-value']], add: [['X-Add', 'added']], remove: ['x-remove'] },
          { type: 'ResponseHeaderModifier', set: [['X-Resp-Set', 'r']], add: [['X-Echo-Name', 'appended']], remove: ['date'] },
        ],
      }),
      rule({ match: prefix('/prefix/one'), filters: [{ type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/one' } }] }),
      rule({ match: prefix('/strip'), filters: [{ type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/' } }] }),
      rule({ match: prefix('/full'), filters: [{ type: 'URLRewrite', hostname: 'rewritten.example', path: { type: 'ReplaceFullPath', value: '/replaced' } }] }),
      redirect('/r/scheme', { scheme: 'https' }),
      redirect('/r/host', { hostname: 'other.example', statusCode: 301 }),
      redirect('/r/port', { port: 8443 }),
      redirect('/r/port80', { port: 80 }),
      redirect('/r/path-full', { path: { type: 'ReplaceFullPath', value: '/new' } }),
      redirect('/r/path-prefix', { path: { type: 'ReplacePrefixMatch', value: '/moved' } }),
      redirect('/r/https-port', { scheme: 'https', port: 443 }),
      rule({ match: prefix('/mirror'), filters: [{ type: 'RequestMirror', backend: { pool: 'mirror' }, percent: 100 }] }),
      rule({ match: prefix('/cors'), filters: [cors] }),
      rule({
        match: prefix('/per-backend'),
        filters: [{ type: 'RequestHeaderModifier', set: [['x-order', 'rule']], add: [], remove: [] }],
        action: { kind: 'forward', backends: [backend('p1', 1, [{ type: 'RequestHeaderModifier', set: [['x-order', 'backend']], add: [['x-backend', 'yes']], remove: [] }])] },
      }),
    ], [pool('p1', [echo.port]), pool('mirror', [mirror.port])]),
  )
})

afterAll(async () => {
  await gw.stop()
  await echo.stop()
  await mirror.stop()
})

async function echoed(res: Response) {
  expect(res.status).toBe(200)
  return (await res.json()) as { path: string; headers: Record<string, string> }
}

describe('header modifiers', () => {
  test('request: set, add appends with ",", remove', async () => {
    const got = await echoed(await fetch(`${gw.base}/headers`, { headers: { 'x-set': 'old', 'x-add': 'original', 'x-remove': 'bye' } }))
    expect(got.headers['x-set']).toBe('set-value')
    expect(got.headers['x-add']).toBe('original,added')
    expect(got.headers['x-remove']).toBeUndefined()
    const fresh = await echoed(await fetch(`${gw.base}/headers`))
    expect(fresh.headers['x-add']).toBe('added')
  })

  test('response: set, add, remove', async () => {
    const res = await fetch(`${gw.base}/headers`)
    expect(res.headers.get('x-resp-set')).toBe('r')
    expect(res.headers.get('x-echo-name')).toBe('main,appended')
    await res.body?.cancel()
  })

  test('per-backendRef filters run after rule filters', async () => {
    const got = await echoed(await fetch(`${gw.base}/per-backend`))
    expect(got.headers['x-order']).toBe('backend')
    expect(got.headers['x-backend']).toBe('yes')
  })
})

describe('URL rewrite', () => {
  test('ReplacePrefixMatch follows the Gateway API examples', () => {
    expect(replacePrefix('/prefix/one/three', '/prefix/one', '/one')).toBe('/one/three')
    expect(replacePrefix('/prefix/one/three', '/prefix/one', '/')).toBe('/three')
    expect(replacePrefix('/prefix/one', '/prefix/one', '/')).toBe('/')
    expect(replacePrefix('/prefix/one/', '/prefix/one', '/one')).toBe('/one/')
    expect(replacePrefix('/foo/bar', '/foo', '/xyz/')).toBe('/xyz/bar')
    expect(replacePrefix('/foo', '/foo', '/xyz')).toBe('/xyz')
    expect(replacePrefix('/bar', '', '/xyz')).toBe('/xyz/bar')
  })

  test('ReplacePrefixMatch through the proxy keeps the query', async () => {
    expect((await echoed(await fetch(`${gw.base}/prefix/one/three?q=1`))).path).toBe('/one/three?q=1')
    expect((await echoed(await fetch(`${gw.base}/strip/three`))).path).toBe('/three')
    expect((await echoed(await fetch(`${gw.base}/strip`))).path).toBe('/')
  })

  test('hostname and ReplaceFullPath', async () => {
    const got = await echoed(await fetch(`${gw.base}/full/whatever?x=y`, { headers: { host: 'orig.example' } }))
    expect(got.path).toBe('/replaced?x=y')
    expect(got.headers.host).toBe('rewritten.example')
    expect(got.headers['x-forwarded-host']).toBe('orig.example')
  })
})

describe('redirect', () => {
  const location = async (path: string, host = 'example.com') => {
    const res = await fetch(`${gw.base}${path}`, { redirect: 'manual', headers: { host } })
    return { status: res.status, location: res.headers.get('location') }
  }

  test('scheme given, no port: default port of the scheme, omitted', async () => {
    expect(await location('/r/scheme/a?q=1')).toEqual({ status: 302, location: 'https://example.com/r/scheme/a?q=1' })
  })

  test('no scheme, no port: listener port kept', async () => {
    expect(await location('/r/host', 'example.com:1234')).toEqual({ status: 301, location: `http://other.example:${gw.port}/r/host` })
  })

  test('explicit port; default ports are omitted', async () => {
    expect((await location('/r/port')).location).toBe('http://example.com:8443/r/port')
    expect((await location('/r/port80')).location).toBe('http://example.com/r/port80')
    expect((await location('/r/https-port')).location).toBe('https://example.com/r/https-port')
  })

  test('path: ReplaceFullPath and ReplacePrefixMatch', async () => {
    expect((await location('/r/path-full/x?a=b')).location).toBe(`http://example.com:${gw.port}/new?a=b`)
    expect((await location('/r/path-prefix/x/y')).location).toBe(`http://example.com:${gw.port}/moved/x/y`)
  })
})

describe('mirror', () => {
  test('copies the request to the mirror pool without affecting the response', async () => {
    const seen = mirror.nextRequest()
    const got = await echoed(await fetch(`${gw.base}/mirror/path?x=1`, { headers: { 'x-probe': 'm1' } }))
    expect(got.path).toBe('/mirror/path?x=1')
    const mirrored = await seen
    expect(mirrored.path).toBe('/mirror/path?x=1')
    expect(mirrored.headers['x-probe']).toBe('m1')
  })

  test('small bodies are mirrored with their body', async () => {
    const seen = mirror.nextRequest()
    await echoed(await fetch(`${gw.base}/mirror/post`, { method: 'POST', body: 'payload' }))
    const mirrored = await seen
    await Bun.sleep(50)
    expect(mirrored.method).toBe('POST')
    expect(mirrored.body).toBe('payload')
  })
})

describe('CORS', () => {
  test('preflight from an allowed wildcard origin is answered locally', async () => {
    const before = echo.requests.length
    const res = await fetch(`${gw.base}/cors`, {
      method: 'OPTIONS',
      headers: { origin: 'https://a.b.bar.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-header-1' },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://a.b.bar.com')
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, OPTIONS')
    expect(res.headers.get('access-control-allow-headers')).toBe('x-header-1, x-header-2')
    expect(res.headers.get('access-control-max-age')).toBe('3600')
    expect(res.headers.get('access-control-allow-credentials')).toBe('true')
    expect(echo.requests.length).toBe(before)
  })

  test('disallowed origin gets no CORS headers', async () => {
    const res = await fetch(`${gw.base}/cors`, { method: 'OPTIONS', headers: { origin: 'https://evil.com', 'access-control-request-method': 'GET' } })
    expect(res.headers.get('access-control-allow-origin')).toBeNull()
    const simpleRes = await fetch(`${gw.base}/cors`, { headers: { origin: 'https://evil.com' } })
    expect(simpleRes.headers.get('access-control-allow-origin')).toBeNull()
    await simpleRes.body?.cancel()
  })

  test('simple request from an allowed origin gets allow-origin and expose-headers', async () => {
    const res = await fetch(`${gw.base}/cors`, { headers: { origin: 'https://www.foo.com' } })
    expect(res.status).toBe(200)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://www.foo.com')
    expect(res.headers.get('access-control-expose-headers')).toBe('x-header-3')
    await res.body?.cancel()
  })
})
