import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'
import { ManifestMemo, nativeEligible, parseManifests } from '../../src/sources/manifests.ts'

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

describe('an edit parsed with a memo gives what a parse without one gives', () => {
  const route = (name: string, path: string) => `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: ${name} }\nspec:\n  rules: [{ matches: [{ path: { value: ${path} } }] }]\n`
  const broken = 'apiVersion: v1\nkind: Service\nmetadata: { name: [oops\n'
  const separators = ['---\n', '---\r\n', '--- # comment\n', '---   \n']
  function prng(seed: number): () => number {
    return () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed / 0x7fffffff
    }
  }
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`random edits of a multi-document file (seed ${seed})`, () => {
      const random = prng(seed)
      const pick = <T,>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!
      let docs = Array.from({ length: 12 }, (_, i) => route(`r${i}`, `/r${i}`))
      let seps = docs.map(() => pick(separators))
      const memo = new ManifestMemo()
      let previous: ReturnType<typeof parseManifests> | undefined
      let changes = 0
      for (let step = 0; step < 80; step++) {
        const what = random()
        const at = Math.floor(random() * (docs.length + 1))
        const some = at % Math.max(1, docs.length)
        const nameOf = (doc: string | undefined) => /name: (\w+)/.exec(doc ?? '')?.[1] ?? `x${step}`
        if (what < 0.25) docs.splice(at, 0, route(`n${step}`, `/n${step}`))
        else if (what < 0.45 && docs.length) docs[some] = route(random() < 0.2 ? `r${Math.floor(random() * 14)}` : nameOf(docs[some]), `/e${step}`) // sometimes a key twice
        else if (what < 0.6 && docs.length) docs.splice(some, 1)
        else if (what < 0.64) docs.splice(at, 0, broken)
        else if (what < 0.72 && docs.length > 1) docs.push(docs.splice(some, 1)[0]!) // a move
        else if (what < 0.78) docs.splice(at, 0, '') // an empty document
        else if (what < 0.84 && docs.length) docs[some] = `# note ${step}\n${docs[some]}`
        else if (what < 0.88) seps = seps.map(() => pick(separators))
        else {
          // broken documents and repeated names fixed
          const seen = new Set<string>()
          docs = docs.filter((d) => d !== broken && !seen.has(nameOf(d)) && (seen.add(nameOf(d)), true))
        }
        while (seps.length < docs.length) seps.push(pick(separators))
        // sometimes no newline at the end, sometimes a trailing separator
        const tail = random() < 0.2 ? '---\n' : ''
        let text = docs.map((d, i) => (i === 0 ? d : seps[i]! + d)).join('') + tail
        if (random() < 0.15) text = text.replace(/\n$/, '')
        const withMemo = parseManifests(text, 'f.yaml', memo)
        const whole = parseManifests(text, 'f.yaml')
        expect(withMemo.objects).toEqual(whole.objects)
        expect(withMemo.problems).toEqual(whole.problems)
        if (withMemo.change) {
          // the change turns the previous objects into these
          expect(previous).toBeDefined()
          expect(withMemo.change.after).toBe(previous!.objects)
          const removed = new Set(withMemo.change.removed)
          const expected = [...previous!.objects.filter((o) => !removed.has(o)), ...withMemo.change.added]
          expect(new Set(expected)).toEqual(new Set(withMemo.objects))
          expect(expected).toHaveLength(withMemo.objects.length)
          changes++
        }
        previous = withMemo
      }
      expect(changes).toBeGreaterThan(5) // the clean path was taken, not only the whole assembly
    })
  }

  test('one route edited among many: a change of one object, the others kept as they were', () => {
    const memo = new ManifestMemo()
    const names = Array.from({ length: 200 }, (_, i) => `r${i}`)
    const first = parseManifests(names.map((n) => route(n, `/${n}`)).join('---\n'), 'f.yaml', memo)
    const second = parseManifests(names.map((n) => route(n, n === 'r100' ? '/edited' : `/${n}`)).join('---\n'), 'f.yaml', memo)
    expect(second.change?.after).toBe(first.objects)
    expect(second.change?.removed).toEqual([first.objects[100]!])
    expect(second.change?.added.map((o) => o.metadata.name)).toEqual(['r100'])
    expect(second.objects[99]).toBe(first.objects[99]!)
    expect(second.objects[101]).toBe(first.objects[101]!)
  })
})

describe("Bun's YAML parser gives the library's values for every piece it is used for", () => {
  const pieces = (text: string) => text.split(/^---[ \t]*(?:#.*)?$/m)
  const same = (piece: string) => {
    if (!nativeEligible(piece)) return false
    let native: unknown
    try {
      native = Bun.YAML.parse(piece)
    } catch {
      return false // the library's path, errors included
    }
    expect(native ?? null).toEqual(YAML.parse(piece, { uniqueKeys: false }) ?? null)
    return true
  }

  test('every YAML file of the tests and examples', () => {
    const files = [...new Bun.Glob('{test,examples,deploy,bench}/**/*.{yaml,yml}').scanSync({ cwd: join(import.meta.dir, '../..') })]
    expect(files.length).toBeGreaterThan(50)
    let used = 0
    for (const file of files) for (const piece of pieces(readFileSync(join(import.meta.dir, '../..', file), 'utf8'))) if (same(piece)) used++
    expect(used).toBeGreaterThan(200)
  })

  test('scalars, block scalars, quoting, comments, CRLF', () => {
    const cases = [
      'a: yes\nb: no\nc: on\nd: 0755\ne: 0o17\nf: 0x1F\ng: ~\nh: .inf\ni: 1e3\nj: 2001-12-14\nk: 1_000\nl: +12\nm: .5\nn: Null\no: TRUE\np: 12:30\nq: 007\nr: 1.0\ns: 9007199254740993\nt:\nu: ""\n',
      'a: "x\\ty\\u00e9\\n"\nb: \'it\'\'s\'\nc: plain text # comment\n# only a comment\nd: "# not a comment"\n',
      'cert: |\n  -----BEGIN CERTIFICATE-----\n  MIIB\n  -----END CERTIFICATE-----\nfolded: >\n  one\n  two\n\n  three\nkeep: |+\n  x\n\nstrip: |-\n  y\n',
      'a: b\r\nc:\r\n  - 1\r\n  -  2\r\nd: { e: [f, "g, h"], i: j }\r\n',
      'a: b\na: c\n',
      'spec:\n  rules:\n  - matches:\n    - path: { type: PathPrefix, value: /a }\n      headers: [{ name: x-y, value: "1" }]\n    backendRefs:\n    - name: s\n      port: 80\n      weight: 0\n',
      'a: [ ]\nb: { }\nc: -1\nd: -.inf\ne: .NaN\nf: 0b101\ng: 1:30:00\nh: "true"\ni: \'null\'\n',
      '  # indented comment\nkey:    value with   spaces   \nlong: ' + 'x'.repeat(5000) + '\n',
    ]
    for (const c of cases) expect(same(c)).toBe(true)
  })
})
