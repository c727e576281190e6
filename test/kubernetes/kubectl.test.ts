/**
 * Keeps the stand-in API server honest: the real kubectl (Debian package kubernetes-client, or
 * $KUBECTL) applies, reads, watches, patches and deletes through it. Skipped, loudly, without kubectl.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver/index.ts'
import { waitFor } from './helpers.ts'

const kubectl = process.env.KUBECTL ?? Bun.which('kubectl')
if (!kubectl) console.warn('SKIPPED kubectl faithfulness tests: no kubectl on PATH (apt-get install -y kubernetes-client, or set KUBECTL)')

let server: FakeApiServer
let kubeconfig: string
let dir: string

// async: the stand-in runs in this process, so a blocking spawn would starve it
async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([kubectl!, '--kubeconfig', kubeconfig, ...args], { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, KUBECONFIG: '' } })
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
  return { code, out, err }
}

const manifest = (path: string, extra = '') => `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${path}}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop, labels: {app: web}}
data: {mode: fast${extra}}
`

describe.skipIf(!kubectl)('the stand-in API server, driven by the real kubectl', () => {
  beforeAll(() => {
    server = startFakeApiServer({ bookmarkIntervalMs: 200 })
    kubeconfig = server.writeKubeconfig()
    dir = join(kubeconfig, '..')
  })
  afterAll(() => server?.stop())

  test('discovery: api-resources lists the Gateway API kinds with their scope', async () => {
    const r = await run('api-resources', '--api-group=gateway.networking.k8s.io', '-o', 'wide')
    expect(r.err).toBe('')
    expect(r.out).toMatch(/httproutes\s+gateway\.networking\.k8s\.io\/v1\s+true\s+HTTPRoute/)
    expect(r.out).toMatch(/gatewayclasses\s+gc\s+gateway\.networking\.k8s\.io\/v1\s+false\s+GatewayClass/)
  })

  test('apply creates, re-apply with a change configures (generation bump), unchanged is a no-op', async () => {
    writeFileSync(join(dir, 'v1.yaml'), manifest('/shop'))
    let r = await run('apply', '-f', join(dir, 'v1.yaml'))
    expect(r.err).toBe('')
    expect(r.out).toContain('httproute.gateway.networking.k8s.io/web created')
    expect(r.out).toContain('configmap/settings created')
    const first = JSON.parse((await run('get', 'httproute', 'web', '-n', 'shop', '-o', 'json')).out)
    expect(first.metadata).toMatchObject({ generation: 1, namespace: 'shop' })
    expect(first.metadata.uid).toMatch(/^[0-9a-f-]{36}$/)
    writeFileSync(join(dir, 'v2.yaml'), manifest('/store', ', size: big'))
    r = await run('apply', '-f', join(dir, 'v2.yaml'))
    expect(r.out).toContain('httproute.gateway.networking.k8s.io/web configured')
    expect(r.out).toContain('configmap/settings configured') // a strategic merge patch
    const second = JSON.parse((await run('get', 'httproute', 'web', '-n', 'shop', '-o', 'json')).out)
    expect(second.metadata.generation).toBe(2)
    expect(Number(second.metadata.resourceVersion)).toBeGreaterThan(Number(first.metadata.resourceVersion))
    expect(second.spec.rules[0].matches[0].path.value).toBe('/store')
    expect(JSON.parse((await run('get', 'cm', 'settings', '-n', 'shop', '-o', 'json')).out).data).toEqual({ mode: 'fast', size: 'big' })
    r = await run('apply', '-f', join(dir, 'v2.yaml'))
    expect(r.out).toContain('httproute.gateway.networking.k8s.io/web unchanged')
    expect(JSON.parse((await run('get', 'httproute', 'web', '-n', 'shop', '-o', 'json')).out).metadata.resourceVersion).toBe(second.metadata.resourceVersion)
  })

  test('label selectors and the table output', async () => {
    const r = await run('get', 'httproutes,configmaps', '-n', 'shop', '-l', 'app=web')
    expect(r.out).toMatch(/httproute\.gateway\.networking\.k8s\.io\/web/)
    expect(r.out).toMatch(/configmap\/settings/)
    expect((await run('get', 'configmaps', '-n', 'shop', '-l', 'app!=web')).err).toContain('No resources found')
  })

  test('status is a subresource: a merge patch to /status leaves spec and generation alone', async () => {
    const before = server.getObject('HTTPRoute', 'shop', 'web')
    // kubectl < 1.24 has no --subresource; the stand-in is patched the same way the status writer does
    const minor = Number((await run('version', '--client', '-o', 'json')).out.match(/"minor":\s*"(\d+)/)?.[1] ?? 0)
    const status = { parents: [{ parentRef: { name: 'edge' }, controllerName: 'portico.dev/gateway-controller', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: '2030-01-01T00:00:00Z' }] }] }
    if (minor >= 24) {
      const r = await run('patch', 'httproute', 'web', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status, spec: { hostnames: ['ignored.example'] } }))
      expect(r.err).toBe('')
    } else server.setStatus('HTTPRoute', 'shop', 'web', status)
    const after = JSON.parse((await run('get', 'httproute', 'web', '-n', 'shop', '-o', 'json')).out)
    expect(after.status.parents[0].parentRef).toEqual({ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }) // CRD defaults
    expect(after.spec).toEqual(before.spec)
    expect(after.metadata.generation).toBe(before.metadata.generation)
    // and a status the CRD schema rejects is a 422, as from a real cluster
    if (minor >= 24) {
      const bad = await run('patch', 'httproute', 'web', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { parents: [{ parentRef: { name: 'edge' }, controllerName: 'x', conditions: [] }] } }))
      expect(bad.code).not.toBe(0)
      expect(bad.err).toContain('is invalid')
    }
  })

  test('get --watch streams changes', async () => {
    const proc = Bun.spawn([kubectl!, '--kubeconfig', kubeconfig, 'get', 'httproutes', '-n', 'shop', '--watch', '-o', 'name'], { stdout: 'pipe', stderr: 'pipe' })
    let out = ''
    const reader = (async () => {
      for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk)
    })()
    await waitFor('initial watch output', () => out.includes('httproute.gateway.networking.k8s.io/web'), 5000)
    server.apply({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'watched', namespace: 'shop' }, spec: { parentRefs: [{ name: 'edge' }] } })
    await waitFor('watch event in kubectl', () => out.includes('httproute.gateway.networking.k8s.io/watched'), 5000)
    proc.kill()
    await reader
  })

  test('delete removes, and a missing object is NotFound', async () => {
    const r = await run('delete', 'httproute', 'web', '-n', 'shop')
    expect(r.out).toContain('httproute.gateway.networking.k8s.io "web" deleted')
    const gone = await run('get', 'httproute', 'web', '-n', 'shop')
    expect(gone.code).not.toBe(0)
    expect(gone.err).toContain('NotFound')
    expect((await run('delete', 'namespace', 'shop')).out).toContain('namespace "shop" deleted')
    expect(server.listObjects('ConfigMap').some((c) => c.metadata.namespace === 'shop')).toBe(false)
  })

  test('creating into a missing namespace fails as on a real server', async () => {
    writeFileSync(join(dir, 'orphan.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n')
    const r = await run('create', '-f', join(dir, 'orphan.yaml'))
    expect(r.code).not.toBe(0)
    expect(r.err).toContain('namespaces "nowhere" not found')
  })
})
