import { describe, expect, test } from 'bun:test'
import { IdleStretcher, PendingWait } from '../../src/dataplane/http/idle-stretch.ts'

/** An IdleControl that records what Bun's timer was set to. */
function recorder() {
  const calls: number[] = []
  return { calls, conn: { idleTimeoutSeconds: 15, setIdleTimeout: (_req: Request, seconds: number) => void calls.push(seconds) } }
}

const req = new Request('http://gateway.test/')

describe('deferred idle stretch', () => {
  test('a request answered within a tick costs no timer call; one still waiting is stretched after one to two ticks', async () => {
    const stretcher = new IdleStretcher(40)
    const fast = recorder()
    const slow = recorder()
    const fastWait = new PendingWait(req, fast.conn, 62, { engaged: false })
    const slowWait = new PendingWait(req, slow.conn, 62, { engaged: false })
    stretcher.defer(fastWait)
    stretcher.defer(slowWait)
    fastWait.done = true
    await Bun.sleep(130)
    expect(fast.calls).toEqual([])
    expect(fastWait.stretched).toBe(false)
    expect(slow.calls).toEqual([62])
    expect(slowWait.stretched).toBe(true)
  })

  test('a request whose body stream took over the timer is left alone', async () => {
    const stretcher = new IdleStretcher(40)
    const streaming = recorder()
    const wait = new PendingWait(req, streaming.conn, 62, { engaged: true })
    stretcher.defer(wait)
    await Bun.sleep(130)
    expect(streaming.calls).toEqual([])
    expect(wait.stretched).toBe(false)
  })

  test('a client connection already gone does not break the sweep', async () => {
    const stretcher = new IdleStretcher(40)
    const gone = { idleTimeoutSeconds: 15, setIdleTimeout: () => { throw new Error('closed') } }
    const after = recorder()
    stretcher.defer(new PendingWait(req, gone, 62, { engaged: false }))
    stretcher.defer(new PendingWait(req, after.conn, 62, { engaged: false }))
    await Bun.sleep(130)
    expect(after.calls).toEqual([62])
  })
})
