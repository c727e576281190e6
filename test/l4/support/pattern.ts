/**
 * A byte stream where every 4-byte little-endian word holds its own index, so a receiver can
 * check order and completeness without keeping the data: any lost, duplicated or reordered
 * chunk shows up as a mismatch at a known offset.
 */
export function patternChunk(offset: number, length: number): Uint8Array {
  if (offset % 4 !== 0 || length % 4 !== 0) throw new Error('pattern chunks are word aligned')
  const words = new Uint32Array(length / 4)
  const first = offset / 4
  for (let i = 0; i < words.length; i++) words[i] = first + i
  return new Uint8Array(words.buffer)
}

export class PatternVerifier {
  received = 0
  /** Offset of the first byte that was not what the pattern says, or -1. */
  firstMismatch = -1

  push(chunk: Uint8Array): void {
    if (this.firstMismatch >= 0) {
      this.received += chunk.length
      return
    }
    let offset = this.received
    for (let i = 0; i < chunk.length; i++, offset++) {
      const expected = (Math.floor(offset / 4) >>> ((offset & 3) * 8)) & 0xff
      if (chunk[i] !== expected) {
        this.firstMismatch = offset
        break
      }
    }
    this.received += chunk.length
  }
}
