import { scanFrom, usable, type PickInput, type Picker, type PoolMember } from './picker.ts'

/**
 * Fewest in-flight requests wins (it counts requests, not connections: fetch multiplexes
 * requests over its own keep-alive pool). Scans from a random start so ties spread out.
 */
export class LeastRequestPicker implements Picker {
  constructor(private readonly members: readonly PoolMember[]) {}

  pick(input: PickInput): PoolMember | undefined {
    const members = this.members
    const n = members.length
    if (n === 0) return undefined
    const start = Math.floor(Math.random() * n)
    let best: PoolMember | undefined
    for (let i = 0; i < n; i++) {
      const member = members[(start + i) % n]!
      if (member === input.avoid || input.tried?.has(member) || !usable(member, input.now)) continue
      if (!best || member.state.inFlight < best.state.inFlight) best = member
    }
    return best ?? scanFrom(members, start, input)
  }
}
