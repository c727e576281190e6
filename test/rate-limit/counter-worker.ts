/** A worker thread hammering one shared local bucket (local-store.test): how many of its hits fit under the limit. */
import { SharedCounters } from '../../src/policy/rate-limit/local-store.ts'

declare const self: Worker
self.onmessage = (e: MessageEvent<{ buffer: SharedArrayBuffer; hits: number; limit: number; now: number; keys: number }>) => {
  const { buffer, hits, limit, now, keys } = e.data
  const counters = new SharedCounters(buffer)
  let allowed = 0
  for (let i = 0; i < hits; i++) if (counters.hit(1234 + (i % keys), 99, 60, 1, now).count <= limit) allowed++
  self.postMessage(allowed)
}
