import { scanFrom, type PickInput, type Picker, type PoolMember } from './picker.ts'

/** Rotates through members. The counter starts at a random offset so many gateways don't move in lockstep. */
export class RoundRobinPicker implements Picker {
  #next = Math.floor(Math.random() * 1024)

  constructor(private readonly members: readonly PoolMember[]) {}

  pick(input: PickInput): PoolMember | undefined {
    const start = this.#next
    this.#next = (start + 1) % 1_000_000_007
    return scanFrom(this.members, start, input)
  }
}
