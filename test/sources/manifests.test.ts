import { expect, test } from 'bun:test'
import { ManifestMemo, parseManifests } from '../../src/sources/manifests.ts'

test('multi-document YAML: objects normalised, unknown kinds ignored, empty docs skipped', () => {
  const { objects, problems } = parseManifests(
    `apiVersion: v1
kind: Service
metadata: { name: a }
spec: { ports: [{ port: 80 }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: ignored }
---
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: gc, namespace: should-go }
spec: { controllerName: x.y/z }
`,
    'f.yaml',
  )
  expect(problems).toEqual([])
  expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['Service/default/a', 'GatewayClass/undefined/gc'])
})

test('JSON List documents are expanded', () => {
  const { objects } = parseManifests(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n' } }] }), 'f.json')
  expect(objects).toHaveLength(1)
})

test('a broken document is reported with its line and does not hide the others', () => {
  const { objects, problems } = parseManifests(
    `apiVersion: v1
kind: Namespace
metadata: { name: good }
---
apiVersion: v1
kind: Service
metadata: { name: [oops
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw }
spec: { gatewayClassName: x, listeners: [{ name: l, port: 99999, protocol: HTTP }] }
`,
    'f.yaml',
  )
  expect(objects.map((o) => o.metadata.name)).toEqual(['good'])
  expect(problems).toHaveLength(2)
  expect(problems[0]!.line).toBe(5)
  expect(problems[1]!.line).toBe(9)
  expect(problems[1]!.objectKey).toBe('Gateway/default/gw')
  expect(problems[1]!.message).toContain('port must be 1-65535')
})

test('line numbers hold with CRLF line endings and many documents', () => {
  const doc = (name: string) => `apiVersion: v1\r\nkind: Namespace\r\nmetadata: { name: ${name} }\r\n`
  const text = [doc('a'), doc('b'), 'apiVersion: v1\r\nkind: Service\r\nmetadata: { name: [oops\r\n', doc('c')].join('---\r\n')
  const { objects, problems } = parseManifests(text, 'crlf.yaml')
  expect(objects.map((o) => o.metadata.name)).toEqual(['a', 'b', 'c'])
  expect(problems).toHaveLength(1)
  expect(problems[0]!.line).toBe(9)
})

test('with a memo, an edit re-parses only the documents that changed; problem lines follow the document', () => {
  const ns = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name} }\n`
  const broken = 'apiVersion: v1\nkind: Service\nmetadata: { name: [oops\n'
  const memo = new ManifestMemo()
  const first = parseManifests([ns('a'), ns('b'), broken, ns('c')].join('---\n'), 'f.yaml', memo)
  expect(first.problems.map((p) => p.line)).toEqual([9])
  // "a" grows by two lines and "c" changes; "b" and the broken document are unchanged
  const second = parseManifests([`# one\n# two\n${ns('a')}`, ns('b'), broken, ns('c2')].join('---\n'), 'f.yaml', memo)
  const byName = (r: typeof first, name: string) => r.objects.find((o) => o.metadata.name === name)
  expect(byName(second, 'b')).toBe(byName(first, 'b')!)
  expect(byName(second, 'a')).toEqual(byName(first, 'a')!)
  expect(byName(second, 'a')).not.toBe(byName(first, 'a')!)
  expect(byName(second, 'c2')).toBeDefined()
  expect(byName(second, 'c')).toBeUndefined()
  // the reused broken document is reported at its new place
  expect(second.problems.map((p) => p.line)).toEqual([11])
  // and the result is what a parse without memo gives
  expect(second).toEqual(parseManifests([`# one\n# two\n${ns('a')}`, ns('b'), broken, ns('c2')].join('---\n'), 'f.yaml'))
})

test('YAML errors never quote the source: a broken Secret keeps its values out of the problem', () => {
  const SECRET = 'c2VjcmV0LXZhbHVlLTQy'
  const broken = [
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata:\n  password: *${SECRET}\n`, // unresolved alias
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\nstringData:\n  password: "ab\\q${SECRET}"\n`, // bad escape
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\nstringData:\n  tls.key: |${SECRET}\n    x\n`, // block scalar header
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata:\n  tls.key: ${SECRET}\n   bad: indent ${SECRET}\n`, // code frame of the line
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata:\n  password: \`${SECRET}\n`, // bad scalar start
    `apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata: { password: ${SECRET}\n`, // unterminated flow map
  ]
  for (const text of broken) {
    const { problems } = parseManifests(text, 'routes/secret.yaml')
    expect(problems).toHaveLength(1)
    expect(problems[0]!.message).toStartWith('YAML error: ')
    expect(JSON.stringify(problems)).not.toContain(SECRET)
    expect(JSON.stringify(problems)).not.toContain(SECRET.slice(0, 8))
  }
  // the wording and the position stay
  expect(parseManifests('a: b: c\n', 'f.yaml').problems[0]!.message).toBe('YAML error: Nested mappings are not allowed in compact mappings at line 1, column 4')
})
