import { scanFrom, type PickInput, type Picker, type PoolMember } from './picker.ts'

export class RandomPicker implements Picker {
  constructor(private readonly members: readonly PoolMember[]) {}

  pick(input: PickInput): PoolMember | undefined {
    return scanFrom(this.members, Math.floor(Math.random() * this.members.length), input)
  }
}
