/**
 * Runs the HTTP and L4 data planes in their own process so tests can measure the gateway's
 * memory apart from clients and backends. argv[2] is a JSON Snapshot. Prints one JSON line
 * {"port": <bound port of the first HTTP port>, "problems": [...]} when ready, then answers each
 * stdin line "rss" with {"rss": bytes} ("gc": the same after a full garbage collection, with the
 * JS heap size too); "stop" stops the data planes and exits. argv[3]: optional JSON HTTP limits.
 */
import { heapStats } from 'bun:jsc'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import { L4Dataplane } from '../../src/dataplane/l4/server.ts'
import { silentLogger } from '../../src/dataplane/log.ts'
import type { Snapshot } from '../../src/ir/types.ts'
import type { HttpLimits } from '../../src/dataplane/http/limits.ts'

const snapshot = JSON.parse(process.argv[2] ?? '{}') as Snapshot
const limits = process.argv[3] ? (JSON.parse(process.argv[3]) as Partial<HttpLimits>) : undefined
const http = new HttpDataplane({ logger: silentLogger, hostname: '127.0.0.1', limits })
const l4 = new L4Dataplane({ logger: silentLogger, hostname: '127.0.0.1' })
const problems = [...(await http.apply(snapshot)).problems, ...(await l4.apply(snapshot)).problems]
console.log(JSON.stringify({ port: http.boundPort(snapshot.http[0]?.port ?? 0) ?? 0, problems }))

let pending = ''
for await (const chunk of Bun.stdin.stream()) {
  pending += new TextDecoder().decode(chunk)
  let newline: number
  while ((newline = pending.indexOf('\n')) >= 0) {
    const command = pending.slice(0, newline).trim()
    pending = pending.slice(newline + 1)
    if (command === 'rss') console.log(JSON.stringify({ rss: process.memoryUsage().rss }))
    if (command === 'gc') {
      Bun.gc(true)
      // HEAP_TYPES=1: live objects by type too (where per-connection memory goes, bench/connections.ts).
      const types = process.env.HEAP_TYPES ? heapStats().objectTypeCounts : undefined
      console.log(JSON.stringify({ rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, types }))
    }
    if (command === 'stop') {
      await Promise.all([http.stop(true), l4.stop()])
      process.exit(0)
    }
  }
}
