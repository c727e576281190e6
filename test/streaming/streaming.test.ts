/** Streaming through the gateway: SSE, Bun's idle timer vs flowing data, the route stream idle timeout. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { HttpDataplane } from '../../src/dataplane/http/server.ts'
import { pool, rule, simple } from '../dataplane/ir.ts'
import { patternBody, startStreamBackend, type StreamBackend } from './support/stream-backend.ts'

let backend: StreamBackend

beforeAll(() => {
  backend = startStreamBackend()
})
afterAll(async () => {
  await backend.stop()
})

async function startGateway(idleTimeoutSeconds: number, streamIdleTimeoutMs?: number) {
  const dp = new HttpDataplane({ hostname: '127.0.0.1', idleTimeoutSeconds })
  const routes = [
    rule({ match: { path: { type: 'PathPrefix', value: '/quiet' } }, streamIdleTimeoutMs, filters: [{ type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/' } }] }),
    rule(),
  ]
  const result = await dp.apply(simple(0, routes, [pool('p1', [backend.port])]))
  expect(result.problems).toEqual([])
  return { dp, base: `http://127.0.0.1:${dp.boundPort(0)}` }
}

/** Reads a body to its end; 'cut' when the connection broke first. */
async function readAll(res: Response): Promise<{ text: string; outcome: 'complete' | 'cut' }> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return { text, outcome: 'complete' }
      text += decoder.decode(value, { stream: true })
    }
  } catch {
    return { text, outcome: 'cut' }
  }
}

test('SSE: the first event reaches the client while the backend still holds the second', async () => {
  const { dp, base } = await startGateway(30)
  try {
    const res = await fetch(`${base}/sse`)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const reader = res.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe('data: first\n\n')
    // Nothing was buffered waiting for more: the backend has not sent the second event yet.
    expect(backend.secondEventSent()).toBe(false)
    backend.release()
    const second = await reader.read()
    expect(new TextDecoder().decode(second.value)).toBe('data: second\n\n')
    expect((await reader.read()).done).toBe(true)
  } finally {
    await dp.stop(true)
  }
})

test("flowing streams outlive Bun's idle timer; the route idle timeout cuts only silent ones", async () => {
  // Bun's idle timer (1 s here; it fires within ~2-4 s) is not reset by data: unguarded, the
  // 5 s streams below would be cut.
  const short = await startGateway(1, 600)
  // Bun's timer is 30 s here, so a cut within seconds can only be the route's 600 ms.
  const long = await startGateway(30, 600)
  try {
    const chattyDownload = fetch(`${short.base}/tick?every=150&count=34`).then(readAll)
    const chattyUpload = fetch(`${short.base}/upload`, { method: 'POST', body: patternBody(34 * 1024, 1024, 150), duplex: 'half' } as RequestInit).then(
      async (res) => (await res.json()) as { bytes: number; ok: boolean },
    )
    const quietButChatty = fetch(`${long.base}/quiet/tick?every=150&count=14`).then(readAll)
    const started = Date.now()
    const silent = await fetch(`${long.base}/quiet/silent`).then(readAll)

    expect(silent.text).toBe('hello\n')
    expect(silent.outcome).toBe('cut')
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(await quietButChatty).toEqual({ text: expect.stringContaining('tick 1\n'), outcome: 'complete' })
    const download = await chattyDownload
    expect(download.outcome).toBe('complete')
    expect(download.text.split('\n').filter(Boolean)).toHaveLength(34)
    expect(await chattyUpload).toEqual({ bytes: 34 * 1024, ok: true })
    // The backend learned that the silent stream's reader went away.
    for (let i = 0; i < 20 && !backend.cancelled.includes('/silent'); i++) await Bun.sleep(50)
    expect(backend.cancelled).toContain('/silent')
  } finally {
    await short.dp.stop(true)
    await long.dp.stop(true)
  }
}, 20_000)
