/** The container image recipe and deploy manifests: they parse, and they say what we mean. */
import { describe, expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { KINDS, RESOURCE_KINDS } from '../../src/store/kinds.ts'

const root = join(import.meta.dir, '../..')
const deployDir = join(root, 'docker/deploy')
const docs: any[] = readdirSync(deployDir)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .sort()
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(deployDir, f), 'utf8')).map((d) => {
      if (d.errors.length) throw new Error(`${f}: ${d.errors[0]!.message}`)
      return d.toJS()
    }),
  )
  // the policy CRDs (00-crd-*.yaml, generated) are checked by test/policy/crds.test.ts
  .filter((d) => d?.kind !== 'CustomResourceDefinition')
const find = (kind: string, name?: string) => docs.find((d) => d.kind === kind && (!name || d.metadata.name === name))

const PLURALS: Record<string, string> = Object.fromEntries(RESOURCE_KINDS.map((k) => [k.kind, k.plural]))
const STATUS_KINDS = RESOURCE_KINDS.filter((k) => 'status' in k && k.status)

describe('docker/deploy manifests', () => {
  test('every document is a well-formed object, in an order kubectl apply -f can create', () => {
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'GatewayClass', 'Deployment', 'PodDisruptionBudget', 'Service', 'NetworkPolicy'])
    for (const d of docs) {
      expect(typeof d.apiVersion).toBe('string')
      expect(d.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
      if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'GatewayClass'].includes(d.kind)) expect(d.metadata.namespace).toBe('portico-system')
    }
  })

  test('RBAC: read every kind we watch, write only /status, leases only in our namespace', () => {
    const rules: any[] = find('ClusterRole').rules
    const allowed = (group: string, resource: string, verb: string) => rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb))
    // Kong's kinds are an optional install with their own RBAC (test/kong/deploy.test.ts)
    const core = ([, info]: [string, { group: string }]) => info.group !== 'configuration.konghq.com'
    for (const [kind, info] of Object.entries(KINDS).filter(core)) for (const verb of ['get', 'list', 'watch']) expect(allowed(info.group, PLURALS[kind]!, verb)).toBe(true)
    for (const k of STATUS_KINDS.filter((k) => core([k.kind, k]))) expect(allowed(k.group, `${k.plural}/status`, 'patch')).toBe(true)
    for (const r of rules) {
      expect(r.verbs).not.toContain('*')
      expect(r.resources).not.toContain('*')
      // writes only ever on a status subresource
      if (r.verbs.some((v: string) => ['create', 'update', 'patch', 'delete'].includes(v))) expect(r.resources.every((x: string) => x.endsWith('/status'))).toBe(true)
    }
    const role = find('Role')
    expect(role.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }])
    for (const binding of [find('ClusterRoleBinding'), find('RoleBinding')]) expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'portico', namespace: 'portico-system' }])
  })

  test('Deployment: 2 non-root replicas, probes on the probe port, downward API for leader election', () => {
    const dep = find('Deployment')
    expect(dep.spec.replicas).toBe(2)
    const pod = dep.spec.template.spec
    expect(pod.serviceAccountName).toBe('portico')
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    expect(dep.spec.selector.matchLabels).toEqual(dep.spec.template.metadata.labels)
    const c = pod.containers[0]
    expect(c.args).toContain('--kubernetes')
    // only the data ports and the probe/metrics port: the admin API stays on the pod's loopback
    expect(c.ports).toEqual([
      { name: 'http', containerPort: 8080 },
      { name: 'https', containerPort: 8443 },
      { name: 'metrics', containerPort: 9902 },
    ])
    expect(c.args).toContain('--probe-port=9902')
    expect(c.args).toContain('--admin-port=9901')
    expect(c.args.some((a: string) => a.startsWith('--admin-address') || a.startsWith('--probe-address'))).toBe(false)
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' })
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' })
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } })
    expect(c.env.map((e: any) => e.name).sort()).toEqual(['POD_IP', 'POD_NAME', 'POD_NAMESPACE'])
  })

  test('NetworkPolicy: ingress to the pods on the data ports and the probe/metrics port only', () => {
    const np = find('NetworkPolicy')
    expect(np.spec.podSelector.matchLabels).toEqual(find('Deployment').spec.template.metadata.labels)
    expect(np.spec.policyTypes).toEqual(['Ingress'])
    expect(np.spec.ingress).toHaveLength(1)
    expect(np.spec.ingress[0].from).toBeUndefined()
    expect(np.spec.ingress[0].ports.map((p: any) => `${p.protocol}/${p.port}`).sort()).toEqual(['TCP/8080', 'TCP/8443', 'TCP/9902'])
    const containerPorts = find('Deployment').spec.template.spec.containers[0].ports.map((p: any) => p.containerPort).sort()
    expect(np.spec.ingress[0].ports.map((p: any) => p.port).sort()).toEqual(containerPorts)
  })

  test('Service: a LoadBalancer in front of the pods; GatewayClass names our controller', () => {
    const svc = find('Service')
    expect(svc.spec.type).toBe('LoadBalancer')
    // the Service publishes data ports only
    expect(svc.spec.ports.map((p: any) => p.targetPort).sort()).toEqual(['http', 'https'])
    expect(svc.spec.selector).toEqual(find('Deployment').spec.template.metadata.labels)
    const named = new Set(find('Deployment').spec.template.spec.containers[0].ports.map((p: any) => p.name))
    for (const p of svc.spec.ports) expect(named.has(p.targetPort)).toBe(true)
    expect(find('GatewayClass').spec.controllerName).toBe('portico.dev/gateway-controller')
  })
})

describe('docker/Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'docker/Dockerfile'), 'utf8')
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

  test('builds with the Bun version the project pins, compiles one binary, runs it as non-root', () => {
    // the bases are build arguments (docker/build-image.sh passes local stand-ins); their defaults are the public images
    const beforeFirstFrom = dockerfile.slice(0, dockerfile.search(/^FROM /m))
    const args = Object.fromEntries([...beforeFirstFrom.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]))
    expect(args).toEqual({ BUN_IMAGE: `oven/bun:${pkg.devDependencies.bun}`, RUNTIME_IMAGE: 'gcr.io/distroless/cc-debian12:nonroot' })
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1])
    expect(froms).toEqual(['${BUN_IMAGE}', '${RUNTIME_IMAGE}'])
    for (const label of ['source', 'version', 'revision']) expect(dockerfile).toContain(`org.opencontainers.image.${label}=`)
    expect(dockerfile).toMatch(/bun build --compile .*src\/main\.ts src\/worker\.ts --outfile \/out\/portico/)
    expect(dockerfile).toMatch(/^USER 65532:65532$/m)
    expect(dockerfile).toMatch(/^HEALTHCHECK NONE$/m)
    // the probe/metrics port, never the admin API
    expect(dockerfile).toMatch(/^EXPOSE 8080 8443 9902$/m)
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/local\/bin\/portico"\]$/m)
    // the COPY sources exist, so the build context is complete
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) for (const f of m[1]!.split(/\s+/)) expect(existsSync(join(root, f))).toBe(true)
  })
})
