/**
 * Short seeded runs of the fuzzers (bench/fuzz-http.ts, bench/fuzz-manifests.ts) so every CI run
 * replays the same few hundred cases. Longer runs with other seeds are on demand.
 */
import { expect, test } from 'bun:test'
import { fuzzHttp, sanityCheck, startFuzzTarget } from '../../bench/fuzz-http.ts'
import { fuzzManifests } from '../../bench/fuzz-manifests.ts'

test('raw HTTP fuzzing: no gateway 500, always a status line, still serving, memory bounded', async () => {
  const target = await startFuzzTarget()
  try {
    // Warm up first so the RSS baseline includes the server's steady state.
    await fuzzHttp({ port: target.port, seed: 99, cases: 100, quietMs: 150 })
    const before = target.rss()
    const report = await fuzzHttp({ port: target.port, seed: 1, cases: 600, quietMs: 150 })
    const growth = target.rss() - before
    console.log(`fuzz-http: ${report.cases} cases, statuses ${JSON.stringify(report.statuses)}, gateway 5xx ${JSON.stringify(report.gateway5xx)}, rss growth ${(growth / 1e6).toFixed(1)} MB`)
    expect(report.failures).toEqual([])
    expect(report.cases).toBe(600)
    // The mutations must actually reach both Bun's parser and Portico's guards.
    expect(report.statuses[400]).toBeGreaterThan(50)
    expect(report.statuses[200]).toBeGreaterThan(20)
    expect(await sanityCheck(target.port)).toBe(200)
    // Loose: catches a leak per case (600 cases), not allocator noise.
    expect(growth).toBeLessThan(64 * 1024 * 1024)
  } finally {
    await target.stop()
  }
}, 30_000)

test('manifest fuzzing: parse → translate → validate → compile never throws', () => {
  const report = fuzzManifests(1, 500)
  console.log(`fuzz-manifests: ${report.cases} cases, ${report.parseProblems} with load problems, ${report.rejected} rejected, ${report.compiled} compiled`)
  expect(report.failures).toEqual([])
  expect(report.compiled).toBeGreaterThan(250)
})
