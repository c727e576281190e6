import { expect, test } from 'bun:test'
import { coalesce } from '../../src/pipeline/coalesce.ts'

test('a burst of notifications runs once', async () => {
  let runs = 0
  const c = coalesce(async () => void runs++, { waitMs: 20, maxWaitMs: 200 })
  for (let i = 0; i < 50; i++) c.notify()
  await c.idle()
  expect(runs).toBe(1)
})

test('a notification during a run schedules exactly one more run, never two at once', async () => {
  let runs = 0
  let concurrent = 0
  let maxConcurrent = 0
  const c = coalesce(
    async () => {
      concurrent++
      maxConcurrent = Math.max(maxConcurrent, concurrent)
      runs++
      await Bun.sleep(30)
      concurrent--
    },
    { waitMs: 1, maxWaitMs: 5 },
  )
  c.notify()
  await Bun.sleep(10)
  c.notify()
  c.notify()
  await Bun.sleep(5)
  c.notify()
  await c.idle()
  expect(maxConcurrent).toBe(1)
  expect(runs).toBe(2)
})

test('maxWait bounds the delay under a steady stream of notifications', async () => {
  let runs = 0
  const c = coalesce(async () => void runs++, { waitMs: 30, maxWaitMs: 60 })
  const until = Date.now() + 200
  while (Date.now() < until) {
    c.notify()
    await Bun.sleep(5)
  }
  await c.idle()
  expect(runs).toBeGreaterThanOrEqual(2)
})
