/** docker/grafana/portico-dashboard.json parses, and every query names a metric Portico exports. */
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { renderRequestMetrics, RequestMetrics } from '../../src/telemetry/request-metrics.ts'

/** Every metric name that appears in the source as an exported series (registry or request metrics). */
function exportedNames(): Set<string> {
  const names = new Set<string>()
  // request metrics: render one of everything
  const m = new RequestMetrics()
  m.labels('g', 'l', 'r', '0', 'b').record(0, 503, 7, 0.01, 0.005, 1, 2)
  m.stream('tcp', 'route="r"').opened++
  m.stream('websocket', 'route="r"').opened++
  for (const line of renderRequestMetrics([m.export()]).split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line)
    if (t) {
      names.add(t[1]!)
      if (t[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(t[1]! + s)
    }
  }
  // registry series (collect/counter/gauge calls) across src/
  const glob = new Bun.Glob('src/**/*.ts')
  for (const file of glob.scanSync({ cwd: join(import.meta.dir, '../..') })) {
    const text = readFileSync(join(import.meta.dir, '../..', file), 'utf8')
    for (const match of text.matchAll(/\.(?:collect|counter|gauge)\(\s*'(portico_[a-z0-9_]+)'/g)) names.add(match[1]!)
  }
  return names
}

test('the Grafana dashboard parses and queries only exported metrics', () => {
  const dash = JSON.parse(readFileSync(join(import.meta.dir, '../../docker/grafana/portico-dashboard.json'), 'utf8'))
  const exported = exportedNames()
  const queries: string[] = [...dash.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr)), ...dash.templating.list.map((v: any) => v.query)]
  expect(queries.length).toBeGreaterThan(10)
  for (const q of queries) {
    const used = [...q.matchAll(/portico_[a-z0-9_]+/g)].map((m) => m[0])
    expect(used.length).toBeGreaterThan(0)
    for (const name of used) expect({ query: q, name, exported: exported.has(name) }).toEqual({ query: q, name, exported: true })
  }
})
