import { scanFrom, usable, type PickInput, type Picker, type PoolMember } from './picker.ts'

/** Rotates through members. The counter starts at a random offset so many gateways don't move in lockstep. */
export class RoundRobinPicker implements Picker {
  #next = Math.floor(Math.random() * 1024)

  constructor(private readonly members: readonly PoolMember[]) {}

  pick(input: PickInput): PoolMember | undefined {
    const start = this.#next
    this.#next = (start + 1) % 1_000_000_007
    const members = this.members
    // The common case in one step: the next member is usable and not to be avoided.
    if (members.length > 0 && input.avoid === undefined && input.tried === undefined) {
      const member = members[start % members.length]!
      if (usable(member, input.now)) return member
    }
    return scanFrom(members, start, input)
  }
}
