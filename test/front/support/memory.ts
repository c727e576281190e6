/**
 * In-process RSS sampling for backpressure tests. The gateway, the test's client and its backend
 * share this process, and every socket read is a fresh buffer: left to itself the GC lets tens of
 * MiB of garbage pile up (more late in a long `bun test` run), which says nothing about what the
 * front holds. So the sampler collects before it samples: the peak then tracks live memory.
 */
export interface MemoryProbe {
  /** Stop sampling; growth of the peak over the baseline, in MiB. */
  stop(): number
}

export async function memoryProbe(everyMs = 50): Promise<MemoryProbe> {
  Bun.gc(true)
  await Bun.sleep(50)
  Bun.gc(true)
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const timer = setInterval(() => {
    Bun.gc(true)
    peak = Math.max(peak, process.memoryUsage().rss)
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      peak = Math.max(peak, process.memoryUsage().rss)
      return (peak - baseline) / (1024 * 1024)
    },
  }
}
