/** The TCP sockets a process listens on, from `ss -ltnp` (Linux), for tests that must cover all of them. */

export interface ListeningSocket {
  /** As ss prints it, brackets removed: "127.0.0.1", "0.0.0.0", "::", "*". */
  readonly address: string
  readonly port: number
}

export function hasSs(): boolean {
  return Bun.which('ss') !== null
}

/** Every listening TCP socket of `pid` (all its threads), deduplicated (SO_REUSEPORT sockets repeat). */
export function listeningSockets(pid: number): ListeningSocket[] {
  const run = Bun.spawnSync(['ss', '-H', '-l', '-t', '-n', '-p'], { stdout: 'pipe', stderr: 'pipe' })
  if (run.exitCode !== 0) throw new Error(`ss failed: ${run.stderr.toString()}`)
  const seen = new Map<string, ListeningSocket>()
  for (const line of run.stdout.toString().split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue
    // State Recv-Q Send-Q Local:Port Peer:Port Process
    const local = line.trim().split(/\s+/)[3]
    const m = local?.match(/^\[?(.*?)\]?(?:%\S+)?:(\d+)$/)
    if (!m) continue
    const socket = { address: m[1]!, port: Number(m[2]) }
    seen.set(`${socket.address}:${socket.port}`, socket)
  }
  return [...seen.values()].sort((a, b) => a.port - b.port)
}
