/**
 * `kubectl apply -k docker/deploy`, offline: the real kubectl renders the kustomization, runs a
 * client-side dry run, then applies it for real to the stand-in API server (serving, on top of
 * what Portico watches, the kinds the manifests create). Skipped, loudly, without kubectl.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { DEFAULT_RESOURCES, startFakeApiServer, type FakeApiServer, type ResourceType } from '../support/fake-apiserver/index.ts'

const kubectl = process.env.KUBECTL ?? Bun.which('kubectl')
if (!kubectl) console.warn('SKIPPED kubectl apply -k docker/deploy: no kubectl on PATH (apt-get install -y kubernetes-client, or set KUBECTL)')

const root = join(import.meta.dir, '../..')
const deployDir = join(root, 'docker/deploy')

/** The built-in kinds docker/deploy creates, as a real API server describes them. */
const builtIn = (group: string, kind: string, plural: string, extra: Partial<ResourceType> = {}): ResourceType => ({
  group,
  versions: ['v1'],
  kind,
  plural,
  singular: kind.toLowerCase(),
  namespaced: true,
  status: false,
  generation: false,
  unconditionalUpdate: true,
  ...extra,
})
const DEPLOY_RESOURCES: readonly ResourceType[] = [
  ...DEFAULT_RESOURCES,
  builtIn('', 'ServiceAccount', 'serviceaccounts', { shortNames: ['sa'] }),
  builtIn('rbac.authorization.k8s.io', 'ClusterRole', 'clusterroles', { namespaced: false }),
  builtIn('rbac.authorization.k8s.io', 'ClusterRoleBinding', 'clusterrolebindings', { namespaced: false }),
  builtIn('rbac.authorization.k8s.io', 'Role', 'roles'),
  builtIn('rbac.authorization.k8s.io', 'RoleBinding', 'rolebindings'),
  builtIn('apps', 'Deployment', 'deployments', { status: true, generation: true, shortNames: ['deploy'] }),
  builtIn('policy', 'PodDisruptionBudget', 'poddisruptionbudgets', { status: true, generation: true, shortNames: ['pdb'] }),
  builtIn('networking.k8s.io', 'NetworkPolicy', 'networkpolicies', { generation: true, shortNames: ['netpol'] }),
  builtIn('apiextensions.k8s.io', 'CustomResourceDefinition', 'customresourcedefinitions', { namespaced: false, status: true, generation: true, shortNames: ['crd'] }),
]

let server: FakeApiServer
let kubeconfig: string

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  // async: the stand-in runs in this process, so a blocking spawn would starve it
  const p = Bun.spawn([kubectl!, '--kubeconfig', kubeconfig, ...args], { cwd: root, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, KUBECONFIG: '' } })
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
  return { code, out, err }
}

/** kind/name of every document in the manifest files, read directly (not through kustomize). */
function manifestObjects(): string[] {
  return readdirSync(deployDir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(join(deployDir, f), 'utf8')).map((d) => d.toJS()))
    .filter((d) => d?.kind)
    .map((d) => `${d.kind}/${d.metadata.name}`)
    .sort()
}

describe.skipIf(!kubectl)('kubectl apply -k docker/deploy', () => {
  beforeAll(() => {
    server = startFakeApiServer({ resources: DEPLOY_RESOURCES })
    kubeconfig = server.writeKubeconfig()
  })
  afterAll(() => server?.stop())

  test('kubectl kustomize renders every manifest in docker/deploy, the policy CRDs included', async () => {
    const r = await run('kustomize', 'docker/deploy')
    expect(r.err).toBe('')
    const rendered = parseAllDocuments(r.out).map((d) => d.toJS())
    // a manifest file added without a line in kustomization.yaml would not be installed
    expect(rendered.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(manifestObjects())
    const crds = rendered.filter((d) => d.kind === 'CustomResourceDefinition').map((d) => d.metadata.name).sort()
    expect(crds).toEqual(['backendtrafficpolicies.gateway.portico.dev', 'clienttrafficpolicies.gateway.portico.dev', 'composites.gateway.portico.dev', 'securitypolicies.gateway.portico.dev'])
    for (const crd of rendered.filter((d) => d.kind === 'CustomResourceDefinition')) {
      // what the API server requires of a CRD: one storage version, a structural schema per served version
      expect(crd.spec.versions.filter((v: any) => v.storage)).toHaveLength(1)
      for (const v of crd.spec.versions) expect(v.schema.openAPIV3Schema.type).toBe('object')
    }
  })

  test('client-side dry run: kubectl maps every object to a resource the API server serves', async () => {
    const r = await run('apply', '-k', 'docker/deploy', '--dry-run=client', '-o', 'name')
    expect(r.err).toBe('')
    expect(r.out.trim().split('\n')).toHaveLength(manifestObjects().length)
    expect(server.listObjects('Deployment')).toEqual([]) // nothing was written
  })

  test('apply creates every object; a second apply changes nothing', async () => {
    const first = await run('apply', '-k', 'docker/deploy')
    expect(first.err).toBe('')
    const created = first.out.trim().split('\n')
    expect(created).toHaveLength(manifestObjects().length)
    for (const line of created) expect(line).toMatch(/ created$/)
    const dep = JSON.parse((await run('get', 'deployment', 'portico', '-n', 'portico-system', '-o', 'json')).out)
    expect(dep.spec.template.spec.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false })
    expect(dep.spec.template.spec.securityContext.runAsUser).toBe(65532)
    expect((await run('get', 'crd', '-o', 'name')).out).toContain('customresourcedefinition.apiextensions.k8s.io/securitypolicies.gateway.portico.dev')
    const second = await run('apply', '-k', 'docker/deploy')
    expect(second.err).toBe('')
    // as on a real cluster, the PodDisruptionBudget's selector (patch strategy "replace") is always re-sent
    for (const line of second.out.trim().split('\n')) expect(line).toMatch(line.startsWith('poddisruptionbudget') ? / configured$/ : / unchanged$/)
    expect(JSON.parse((await run('get', 'deployment', 'portico', '-n', 'portico-system', '-o', 'json')).out).metadata.generation).toBe(dep.metadata.generation)
  })
})
