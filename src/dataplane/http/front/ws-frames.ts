/**
 * WebSocket frame boundaries in a byte stream (RFC 6455 §5.2), for the front's direct WebSocket
 * tunnels: bytes are relayed untouched, but the gateway must know where frames end to inject a
 * close frame of its own (graceful stop, idle timeout) and to tell data frames from pings.
 *
 * Only frame headers (2-14 bytes) are looked at; payloads are skipped by length.
 */

const enum Opcode {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
}

export class FrameTracker {
  /** Header bytes of the frame being read (at most 14). */
  readonly #header = new Uint8Array(14)
  #headerLength = 0
  #needed = 2
  #remaining = 0
  /** A text, binary or continuation frame passed since the last takeActivity(). */
  #activity = false
  /** Data messages completed (a text/binary/continuation frame with FIN): telemetry. */
  messages = 0

  constructor(
    /** Frames in this direction carry a masking key (client to server). */
    readonly masked: boolean,
  ) {}

  /** Between frames: a frame of ours may be written here. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#headerLength === 0
  }

  /**
   * Advance over `data`. With `stopAtBoundary`, returns the offset of the first frame boundary
   * reached inside `data` (bytes after it should not be relayed), else -1.
   */
  feed(data: Uint8Array, stopAtBoundary = false): number {
    const n = data.byteLength
    let i = 0
    if (stopAtBoundary && this.atBoundary) return 0
    while (i < n) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, n - i)
        this.#remaining -= take
        i += take
        if (stopAtBoundary && this.#remaining === 0) return i
        continue
      }
      const header = this.#header
      header[this.#headerLength++] = data[i++]!
      if (this.#headerLength === 2) {
        const length7 = header[1]! & 0x7f
        this.#needed = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + ((header[1]! & 0x80) !== 0 ? 4 : 0)
      }
      if (this.#headerLength < 2 || this.#headerLength < this.#needed) continue
      const length7 = header[1]! & 0x7f
      let length = length7
      if (length7 === 126) length = (header[2]! << 8) | header[3]!
      else if (length7 === 127) {
        // 64-bit length; anything past 2^53 is not a real frame.
        length = 0
        for (let b = 2; b < 10; b++) length = length * 256 + header[b]!
      }
      const opcode = header[0]! & 0x0f
      if (opcode === Opcode.Text || opcode === Opcode.Binary || opcode === Opcode.Continuation) {
        this.#activity = true
        if ((header[0]! & 0x80) !== 0) this.messages++
      }
      this.#headerLength = 0
      this.#needed = 2
      this.#remaining = length
      if (stopAtBoundary && length === 0) return i
    }
    return -1
  }

  /** Whether data frames passed since the last call. */
  takeActivity(): boolean {
    const active = this.#activity
    this.#activity = false
    return active
  }
}

/** A close frame with `code` and a short reason; masked for the client-to-server direction. */
export function closeFrame(code: number, reason: string, masked: boolean): Uint8Array {
  const text = Buffer.from(reason.slice(0, 120), 'utf8')
  const payload = new Uint8Array(2 + text.byteLength)
  payload[0] = code >> 8
  payload[1] = code & 0xff
  payload.set(text, 2)
  const frame = new Uint8Array(2 + (masked ? 4 : 0) + payload.byteLength)
  frame[0] = 0x88 // FIN + close
  frame[1] = (masked ? 0x80 : 0) | payload.byteLength
  if (!masked) {
    frame.set(payload, 2)
    return frame
  }
  const key = crypto.getRandomValues(new Uint8Array(4))
  frame.set(key, 2)
  for (let i = 0; i < payload.byteLength; i++) frame[6 + i] = payload[i]! ^ key[i & 3]!
  return frame
}
