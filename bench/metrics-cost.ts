/**
 * In-process cost of what the direct path adds per request for request metrics: two
 * performance.now() reads (start, end; the upstream start is a third), the method index and
 * LabelSet.record (cell lookup, two histogram buckets, sums). `npx bun bench/metrics-cost.ts`
 */
import { methodIndex, RequestMetrics } from '../src/telemetry/request-metrics.ts'

const m = new RequestMetrics()
const set = m.labels('default/gw', 'http', 'default/r', '0', 'default/echo:80')
const N = 5_000_000
const methods = ['GET', 'GET', 'POST', 'GET']
for (let round = 0; round < 3; round++) {
  let t = performance.now()
  for (let i = 0; i < N; i++) {
    const t0 = performance.now()
    const tUp = performance.now()
    const end = performance.now()
    set.record(methodIndex(methods[i & 3]!), 200, 0, (end - t0) / 1000, (end - tUp) / 1000, 120, 540)
  }
  const withMetrics = ((performance.now() - t) * 1e6) / N
  t = performance.now()
  let x = 0
  for (let i = 0; i < N; i++) x += methods[i & 3]!.length
  const loop = ((performance.now() - t) * 1e6) / N
  console.log(`round ${round}: ${(withMetrics - loop).toFixed(0)} ns per request (3 clock reads + record), loop overhead ${loop.toFixed(1)} ns${x < 0 ? '' : ''}`)
}
