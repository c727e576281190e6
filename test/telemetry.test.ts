import { expect, test } from 'bun:test'
import { MetricsRegistry } from '../src/telemetry/metrics.ts'

test('counters, gauges and scrape-time values render as Prometheus text', () => {
  const m = new MetricsRegistry()
  const hits = m.counter('portico_hits_total', 'Hits')
  hits.inc({ route: 'a"b' })
  hits.inc({ route: 'a"b' }, 2)
  m.gauge('portico_up', 'Up').set(1)
  let n = 0
  m.collect('portico_rebuilds_total', 'Rebuilds', () => [[undefined, ++n]], 'counter')
  const text = m.render()
  expect(text).toContain('# TYPE portico_hits_total counter\nportico_hits_total{route="a\\"b"} 3\n')
  expect(text).toContain('# TYPE portico_up gauge\nportico_up 1\n')
  expect(text).toContain('# TYPE portico_rebuilds_total counter\nportico_rebuilds_total 1\n')
  expect(m.render()).toContain('portico_rebuilds_total 2\n')
})
