/**
 * Runs an L4Dataplane in its own process so tests and benchmarks can measure the gateway's
 * memory apart from the clients and backends. argv[2] is a JSON Snapshot. Prints one JSON line
 * {"problems": [...]} when ready, then answers each stdin line "rss" with {"rss": bytes}.
 */
import { L4Dataplane } from '../../../src/dataplane/l4/server.ts'
import { silentLogger } from '../../../src/dataplane/log.ts'
import type { Snapshot } from '../../../src/ir/types.ts'

const snapshot = JSON.parse(process.argv[2] ?? '{}') as Snapshot
const dataplane = new L4Dataplane({ logger: silentLogger, hostname: '127.0.0.1' })
const { problems } = await dataplane.apply(snapshot)
console.log(JSON.stringify({ problems }))

let pending = ''
for await (const chunk of Bun.stdin.stream()) {
  pending += new TextDecoder().decode(chunk)
  let newline: number
  while ((newline = pending.indexOf('\n')) >= 0) {
    const command = pending.slice(0, newline).trim()
    pending = pending.slice(newline + 1)
    if (command === 'rss') console.log(JSON.stringify({ rss: process.memoryUsage().rss }))
    if (command === 'stop') {
      await dataplane.stop()
      process.exit(0)
    }
  }
}
