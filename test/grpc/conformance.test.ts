/**
 * The upstream GRPCRoute conformance cases (kubernetes-sigs/gateway-api conformance/tests,
 * grpcroute-*.go and backendtlspolicy-grpcroute.go), ported: same manifests (ports and addresses
 * made local), same requests and expectations, with a real @grpc/grpc-js client through Portico
 * to @grpc/grpc-js echo backends (echo.ts). Upstream compares the status code, the method and the
 * backend only; where a case lists the headers the backend must see, these tests check them too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eventually } from '../e2e/support.ts'
import { makeCertificate, type Certificate } from '../l4/support/servers.ts'
import { echoClient, grpc, SERVICE, startEchoBackend, unary, type CallResult } from './echo.ts'
import { GrpcHarness, NS, service } from './harness.ts'

const OK = grpc.status.OK
const UNIMPLEMENTED = grpc.status.UNIMPLEMENTED

/** One harness per case: its backends, its Gateway, its manifests, a client per authority. */
function conformanceCase(name: string, manifests: (h: GrpcHarness) => string, body: (call: (method: string, opts?: { authority?: string; metadata?: Record<string, string> }) => Promise<CallResult>, h: GrpcHarness) => void, setup?: { backends?: number; listeners?: (port: number) => string; before?: (h: GrpcHarness) => Promise<void> }) {
  describe(name, () => {
    const h = new GrpcHarness()
    const clients = new Map<string, grpc.Client>()
    const client = (authority = '') => {
      let c = clients.get(authority)
      if (!c) clients.set(authority, (c = echoClient(h.port, authority || undefined)))
      return c
    }
    beforeAll(async () => {
      await h.start(setup?.backends ?? 3, setup?.listeners)
      await setup?.before?.(h)
      h.cfg.write('case.yaml', manifests(h))
      await h.run()
      // The gateway is live when any call gets a gRPC answer from it (not a connection error).
      await eventually(async () => (await unary(client(), 'Echo', {}, 'hi', 1000)).code !== grpc.status.UNAVAILABLE || undefined, 10_000, `${name} live`)
    })
    afterAll(async () => {
      for (const c of clients.values()) c.close()
      await h.stop()
    })
    body((method, opts = {}) => unary(client(opts.authority), method, opts.metadata), h)
  })
}

const route = (name: string, rules: string, extra = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: ${name}, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace }]
${extra}  rules:
${rules}`

const methodRule = (method: string, backend: string, more = '') => `    - matches: [{ method: { service: ${SERVICE}, method: ${method} } }]
${more}      backendRefs: [{ name: ${backend}, port: 8080 }]
`

function expectBackend(r: CallResult, backend: string, method = 'Echo'): void {
  expect(r.code).toBe(OK)
  expect(r.answer?.backend).toBe(backend)
  expect(r.answer?.method).toBe(`/${SERVICE}/${method}`)
}

conformanceCase(
  'GRPCExactMethodMatching',
  () => route('exact-matching', methodRule('Echo', 'grpc-infra-backend-v1') + methodRule('EchoTwo', 'grpc-infra-backend-v2')),
  (call) => {
    test('Echo → v1', async () => expectBackend(await call('Echo'), 'grpc-infra-backend-v1'))
    test('EchoTwo → v2', async () => expectBackend(await call('EchoTwo'), 'grpc-infra-backend-v2', 'EchoTwo'))
    test('EchoThree → UNIMPLEMENTED', async () => expect((await call('EchoThree')).code).toBe(UNIMPLEMENTED))
  },
)

conformanceCase(
  'GRPCRouteHeaderMatching',
  () =>
    route(
      'grpc-header-matching',
      `    - matches: [{ headers: [{ name: version, value: one }] }]
      backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }]
    - matches: [{ headers: [{ name: version, value: two }] }]
      backendRefs: [{ name: grpc-infra-backend-v2, port: 8080 }]
    - matches: [{ headers: [{ name: version, value: two }, { name: color, value: orange }] }]
      backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }]
    - matches: [{ headers: [{ name: color, value: blue }] }, { headers: [{ name: color, value: green }] }]
      backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }]
    - matches: [{ headers: [{ name: color, value: red }] }, { headers: [{ name: color, value: yellow }] }]
      backendRefs: [{ name: grpc-infra-backend-v2, port: 8080 }]
`,
    ),
  (call) => {
    const cases: [Record<string, string>, string | undefined][] = [
      [{ Version: 'one' }, 'grpc-infra-backend-v1'],
      [{ Version: 'two' }, 'grpc-infra-backend-v2'],
      [{ Version: 'two', Color: 'orange' }, 'grpc-infra-backend-v1'],
      [{ Version: 'two', Color: 'blue' }, 'grpc-infra-backend-v2'],
      [{ Color: 'orange' }, undefined],
      [{ 'Some-Other-Header': 'one' }, undefined],
      [{ Color: 'blue' }, 'grpc-infra-backend-v1'],
      [{ Color: 'green' }, 'grpc-infra-backend-v1'],
      [{ Color: 'red' }, 'grpc-infra-backend-v2'],
      [{ Color: 'yellow' }, 'grpc-infra-backend-v2'],
      [{ Color: 'purple' }, undefined],
    ]
    for (const [metadata, backend] of cases) {
      test(`${JSON.stringify(metadata)} → ${backend ?? 'UNIMPLEMENTED'}`, async () => {
        const r = await call('Echo', { metadata })
        if (backend) expectBackend(r, backend)
        else expect(r.code).toBe(UNIMPLEMENTED)
      })
    }
  },
)

conformanceCase(
  'GRPCRouteListenerHostnameMatching',
  () => `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: backend-v1, namespace: ${NS} }
spec:
  parentRefs: [{ name: grpcroute-listener-hostname-matching, namespace: ${NS}, sectionName: listener-1 }]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: backend-v2, namespace: ${NS} }
spec:
  parentRefs: [{ name: grpcroute-listener-hostname-matching, namespace: ${NS}, sectionName: listener-2 }]
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v2, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: backend-v3, namespace: ${NS} }
spec:
  parentRefs:
    - { name: grpcroute-listener-hostname-matching, namespace: ${NS}, sectionName: listener-3 }
    - { name: grpcroute-listener-hostname-matching, namespace: ${NS}, sectionName: listener-4 }
  rules: [{ backendRefs: [{ name: grpc-infra-backend-v3, port: 8080 }] }]
`,
  (call) => {
    const cases: [string, string | undefined][] = [
      ['bar.com', 'grpc-infra-backend-v1'],
      ['foo.bar.com', 'grpc-infra-backend-v2'],
      ['baz.bar.com', 'grpc-infra-backend-v3'],
      ['boo.bar.com', 'grpc-infra-backend-v3'],
      ['multiple.prefixes.bar.com', 'grpc-infra-backend-v3'],
      ['multiple.prefixes.foo.com', 'grpc-infra-backend-v3'],
      ['foo.com', undefined],
      ['no.matching.host', undefined],
    ]
    for (const [authority, backend] of cases) {
      test(`${authority} → ${backend ?? 'UNIMPLEMENTED'}`, async () => {
        const r = await call('Echo', { authority })
        if (backend) expectBackend(r, backend)
        else expect(r.code).toBe(UNIMPLEMENTED)
      })
    }
  },
  {
    // The case's own Gateway: four HTTP listeners on one port, told apart by hostname.
    before: async (h) => {
      h.cfg.write(
        'gateway-hostnames.yaml',
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: grpcroute-listener-hostname-matching, namespace: ${NS} }
spec:
  gatewayClassName: portico
  listeners:
    - { name: listener-1, port: ${h.port}, protocol: HTTP, hostname: bar.com, allowedRoutes: { namespaces: { from: Same } } }
    - { name: listener-2, port: ${h.port}, protocol: HTTP, hostname: foo.bar.com, allowedRoutes: { namespaces: { from: Same } } }
    - { name: listener-3, port: ${h.port}, protocol: HTTP, hostname: "*.bar.com", allowedRoutes: { namespaces: { from: Same } } }
    - { name: listener-4, port: ${h.port}, protocol: HTTP, hostname: "*.foo.com", allowedRoutes: { namespaces: { from: Same } } }
`,
      )
    },
    // same-namespace shares the port with a hostname no case uses.
    listeners: (port) => `[{ name: http, port: ${port}, protocol: HTTP, hostname: unused.invalid }]`,
  },
)

conformanceCase(
  'GRPCRouteNamedRule',
  () =>
    route(
      'grpc-named-rules',
      `    - name: named-rule
      matches: [{ method: { service: ${SERVICE}, method: Echo } }]
      backendRefs: [{ name: grpc-infra-backend-v1, port: 8080 }]
${methodRule('EchoTwo', 'grpc-infra-backend-v2')}`,
    ),
  (call, h) => {
    test('Echo (the named rule) → v1', async () => expectBackend(await call('Echo'), 'grpc-infra-backend-v1'))
    test('EchoTwo → v2', async () => expectBackend(await call('EchoTwo'), 'grpc-infra-backend-v2', 'EchoTwo'))
    test('the route is Accepted with its named rule', async () => {
      const resources = (await (await fetch(`http://127.0.0.1:${h.gw!.adminPort}/resources`)).json()) as { kind: string; metadata: { name: string }; status?: { parents?: { conditions: { type: string; status: string }[] }[] } }[]
      const r = resources.find((x) => x.kind === 'GRPCRoute' && x.metadata.name === 'grpc-named-rules')
      expect(r?.status?.parents?.[0]?.conditions.find((c) => c.type === 'Accepted')?.status).toBe('True')
    })
  },
)

conformanceCase(
  'GRPCRouteRequestHeaderModifier',
  () =>
    route(
      'grpc-request-header-modifier',
      methodRule('Echo', 'grpc-infra-backend-v1', `      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Header-Set, value: set-overwrites-values }] } }]\n`) +
        methodRule('Echo', 'grpc-infra-backend-v1', `      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: X-Header-Add, value: add-appends-values }] } }]\n`) +
        methodRule('Echo', 'grpc-infra-backend-v1', `      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { remove: [X-Header-Remove] } }]\n`) +
        methodRule(
          'EchoTwo',
          'grpc-infra-backend-v2',
          `      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: X-Header-Set-1, value: header-set-1 }, { name: X-Header-Set-2, value: header-set-2 }]
            add: [{ name: X-Header-Add-1, value: header-add-1 }, { name: X-Header-Add-2, value: header-add-2 }]
            remove: [X-Header-Remove-1, X-Header-Remove-2]
`,
        ),
    ),
  (call) => {
    const authority = SERVICE
    test('set: X-Header-Set gets the value', async () => {
      const r = await call('Echo', { authority, metadata: { 'Some-Other-Header': 'this-header-should-be-set' } })
      expectBackend(r, 'grpc-infra-backend-v1')
      expect(r.answer?.headers['some-other-header']).toBe('this-header-should-be-set')
      expect(r.answer?.headers['x-header-set']).toBe('set-overwrites-values')
    })
    test('set: X-Header-Set overwrites the client value', async () => {
      const r = await call('Echo', { authority, metadata: { 'Some-Other-Header': 'this-header-should-be-set', 'X-Header-Set': 'this-value-should-be-overwritten' } })
      expectBackend(r, 'grpc-infra-backend-v1')
      expect(r.answer?.headers['x-header-set']).toBe('set-overwrites-values')
    })
    // Rules 2 and 3 have the same match as rule 1, so rule 1 (first in order) serves Echo: their
    // add/remove filters never run (upstream's expectations for these cases are not compared).
    test('add/remove rules shadowed by the first Echo rule: the first rule serves', async () => {
      const r = await call('Echo', { authority, metadata: { 'X-Header-Add': 'this-value-should-be-appended', 'X-Header-Remove': 'kept' } })
      expectBackend(r, 'grpc-infra-backend-v1')
      expect(r.answer?.headers['x-header-set']).toBe('set-overwrites-values')
      expect(r.answer?.headers['x-header-add']).toBe('this-value-should-be-appended')
    })
    test('multiple operations: set, add and remove all applied', async () => {
      const r = await call('EchoTwo', { authority, metadata: { 'X-Header-Set-2': 'set-header-2', 'X-Header-Add-2': 'add-header-2', 'X-Header-Remove-2': 'should-be-removed-2', 'Some-Other-Header': 'another-header-val' } })
      expectBackend(r, 'grpc-infra-backend-v2', 'EchoTwo')
      const seen = r.answer!.headers
      expect(seen['x-header-set-1']).toBe('header-set-1')
      expect(seen['x-header-set-2']).toBe('header-set-2')
      expect(seen['x-header-add-1']).toBe('header-add-1')
      expect(seen['x-header-add-2']?.split(/,\s*/)).toEqual(['add-header-2', 'header-add-2'])
      expect(seen['x-header-remove-2']).toBeUndefined()
      expect(seen['some-other-header']).toBe('another-header-val')
    })
    test('header names are case-insensitive', async () => {
      const r = await call('EchoTwo', { authority, metadata: { 'x-header-set-1': 'original-set-1', 'x-header-add-1': 'existing-add-1', 'x-header-remove-1': 'should-be-removed-1' } })
      expectBackend(r, 'grpc-infra-backend-v2', 'EchoTwo')
      const seen = r.answer!.headers
      expect(seen['x-header-set-1']).toBe('header-set-1')
      expect(seen['x-header-add-1']?.split(/,\s*/)).toEqual(['existing-add-1', 'header-add-1'])
      expect(seen['x-header-remove-1']).toBeUndefined()
    })
  },
)

conformanceCase(
  'GRPCRouteWeight',
  () => route('weighted-backends', `    - backendRefs:
        - { name: grpc-infra-backend-v1, port: 8080, weight: 70 }
        - { name: grpc-infra-backend-v2, port: 8080, weight: 30 }
        - { name: grpc-infra-backend-v3, port: 8080, weight: 0 }
`),
  (call) => {
    test('400 calls split about 70/30, none to the weight-0 backend', async () => {
      const counts: Record<string, number> = {}
      for (let i = 0; i < 400; i++) {
        const r = await call('Echo', { metadata: { 'x-jitter': String(i) } })
        expect(r.code).toBe(OK)
        counts[r.answer!.backend] = (counts[r.answer!.backend] ?? 0) + 1
      }
      expect(counts['grpc-infra-backend-v3']).toBeUndefined()
      // 70 % of 400 = 280, standard deviation ≈ 9.2: ±40 is more than 4 of them.
      expect(Math.abs((counts['grpc-infra-backend-v1'] ?? 0) - 280)).toBeLessThan(40)
      expect((counts['grpc-infra-backend-v1'] ?? 0) + (counts['grpc-infra-backend-v2'] ?? 0)).toBe(400)
    })
  },
)

let good: Certificate
let other: Certificate
conformanceCase(
  'BackendTLSPolicyGRPCRoute',
  (h) => {
    const tlsPort = (h as GrpcHarness & { tlsPort: number }).tlsPort
    const indent = (s: string) => s.trim().split('\n').map((l) => `    ${l}`).join('\n')
    const policy = (name: string, svc: string, ca: string, hostname: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: { name: ${name}, namespace: ${NS} }
spec:
  targetRefs: [{ group: "", kind: Service, name: ${svc}, sectionName: btls }]
  validation: { caCertificateRefs: [{ group: "", kind: ConfigMap, name: ${ca} }], hostname: ${hostname} }
`
    return [
      `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: backendtlspolicy-grpcroute, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace, namespace: ${NS} }]
  hostnames: [abc.example.com]
  rules:
    - matches: [{ method: { service: ${SERVICE}, method: Echo } }]
      backendRefs: [{ group: "", kind: Service, name: backendtlspolicy-grpc-test, port: 443 }]
    - matches: [{ method: { service: ${SERVICE}, method: EchoTwo } }]
      backendRefs: [{ group: "", kind: Service, name: backendtlspolicy-grpc-host-mismatch-test, port: 443 }]
`,
      `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: backendtlspolicy-grpcroute-cert-mismatch, namespace: ${NS} }
spec:
  parentRefs: [{ name: same-namespace, namespace: ${NS} }]
  hostnames: [cert-mismatch.example.com]
  rules:
    - matches: [{ method: { service: ${SERVICE}, method: Echo } }]
      backendRefs: [{ group: "", kind: Service, name: backendtlspolicy-grpc-cert-mismatch-test, port: 443 }]
`,
      service('backendtlspolicy-grpc-test', tlsPort, { appProtocol: '', port: 443, portName: 'btls' }),
      service('backendtlspolicy-grpc-host-mismatch-test', tlsPort, { appProtocol: '', port: 443, portName: 'btls' }),
      service('backendtlspolicy-grpc-cert-mismatch-test', tlsPort, { appProtocol: '', port: 443, portName: 'btls' }),
      `apiVersion: v1
kind: ConfigMap
metadata: { name: tls-checks-ca-certificate, namespace: ${NS} }
data:
  ca.crt: |
${indent(good.certPem)}
`,
      `apiVersion: v1
kind: ConfigMap
metadata: { name: mismatch-ca-certificate, namespace: ${NS} }
data:
  ca.crt: |
${indent(other.certPem)}
`,
      policy('grpc-normative-test', 'backendtlspolicy-grpc-test', 'tls-checks-ca-certificate', 'abc.example.com'),
      policy('grpc-host-mismatch', 'backendtlspolicy-grpc-host-mismatch-test', 'tls-checks-ca-certificate', 'mismatch.example.com'),
      policy('grpc-cert-mismatch', 'backendtlspolicy-grpc-cert-mismatch-test', 'mismatch-ca-certificate', 'abc.example.com'),
    ].join('---\n')
  },
  (call, h) => {
    test('policies are Accepted and ResolvedRefs for the Gateway', async () => {
      const resources = (await (await fetch(`http://127.0.0.1:${h.gw!.adminPort}/resources`)).json()) as { kind: string; metadata: { name: string }; status?: { ancestors?: { ancestorRef: { name: string }; conditions: { type: string; status: string }[] }[] } }[]
      for (const name of ['grpc-normative-test', 'grpc-host-mismatch', 'grpc-cert-mismatch']) {
        const p = resources.find((x) => x.kind === 'BackendTLSPolicy' && x.metadata.name === name)
        const ancestor = p?.status?.ancestors?.find((a) => a.ancestorRef.name === 'same-namespace')
        expect(ancestor?.conditions.find((c) => c.type === 'Accepted')?.status).toBe('True')
        expect(ancestor?.conditions.find((c) => c.type === 'ResolvedRefs')?.status).toBe('True')
      }
    })
    test('a call to the Service with a valid BackendTLSPolicy succeeds over TLS', async () => {
      expectBackend(await call('Echo', { authority: 'abc.example.com' }), 'grpc-infra-backend-v1')
    })
    test('a hostname the certificate does not carry fails', async () => {
      const r = await call('EchoTwo', { authority: 'abc.example.com' })
      expect(r.code).not.toBe(OK)
      expect(r.code).toBe(grpc.status.UNAVAILABLE)
    })
    test('a CA that did not sign the certificate fails', async () => {
      const r = await call('Echo', { authority: 'cert-mismatch.example.com' })
      expect(r.code).toBe(grpc.status.UNAVAILABLE)
    })
  },
  {
    backends: 0,
    before: async (h) => {
      good = makeCertificate(['abc.example.com'])
      other = makeCertificate(['abc.example.com'])
      const tls = await startEchoBackend('grpc-infra-backend-v1', { key: good.keyPem, cert: good.certPem })
      h.backends.push(tls)
      ;(h as GrpcHarness & { tlsPort: number }).tlsPort = tls.port
    },
  },
)
