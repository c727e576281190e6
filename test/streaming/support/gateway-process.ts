/**
 * Runs an HttpDataplane in its own process so tests can measure the gateway's memory apart from
 * clients and backends. argv[2] is a JSON Snapshot with one HTTP port (IR port 0). Prints one JSON
 * line {"port": bound, "problems": [...]} when ready, then answers each stdin line "rss" with
 * {"rss": bytes}; "stop" stops the data plane and exits.
 */
import { HttpDataplane } from '../../../src/dataplane/http/server.ts'
import { silentLogger } from '../../../src/dataplane/log.ts'
import type { Snapshot } from '../../../src/ir/types.ts'

const snapshot = JSON.parse(process.argv[2] ?? '{}') as Snapshot
const dataplane = new HttpDataplane({ logger: silentLogger, hostname: '127.0.0.1' })
const { problems } = await dataplane.apply(snapshot)
console.log(JSON.stringify({ port: dataplane.boundPort(snapshot.http[0]?.port ?? 0) ?? 0, problems }))

let pending = ''
for await (const chunk of Bun.stdin.stream()) {
  pending += new TextDecoder().decode(chunk)
  let newline: number
  while ((newline = pending.indexOf('\n')) >= 0) {
    const command = pending.slice(0, newline).trim()
    pending = pending.slice(newline + 1)
    if (command === 'rss') console.log(JSON.stringify({ rss: process.memoryUsage().rss }))
    if (command === 'stop') {
      await dataplane.stop(true)
      process.exit(0)
    }
  }
}
