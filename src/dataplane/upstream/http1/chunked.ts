/**
 * Incremental decoder for a chunked response body (RFC 9112 §7.1). Feed it whatever the socket
 * delivered; it hands out the payload slices (views into the input, no copies) and says when
 * the last chunk and the trailer section have been read. Chunk extensions and trailers are
 * dropped, as by most proxies (nginx, fetch): clients of an HTTP/1.1 proxy rarely see trailers.
 */

const enum State {
  Size,
  SizeLineRest,
  Data,
  DataCr,
  DataLf,
  Trailer,
  Done,
}

export class ChunkedDecodeError extends Error {}

export class ChunkedDecoder {
  /**
   * Strict (requests from clients, RFC 9112 §7.1): every line ends with CRLF, extensions hold no
   * control bytes. Lenient (responses from backends) tolerates bare LF like most parsers. A front
   * that accepts framing a backend may read differently is how request smuggling starts.
   */
  constructor(readonly strict = false) {}

  #state = State.Size
  /** Strict mode: the previous byte of the current line was CR. */
  #cr = false
  /** Strict mode: a ";" started the chunk extensions of this size line. */
  #extension = false
  /** Strict mode: the current trailer line has had its ":". */
  #colon = false
  #size = 0
  #sizeDigits = 0
  #remaining = 0
  /** Length of the current trailer line (0 at the start of a line: a blank line ends the body). */
  #trailerLine = 0

  get done(): boolean {
    return this.#state === State.Done
  }

  /** Between chunks (before a size line): a last-chunk of our own could end the body here. */
  get atChunkEnd(): boolean {
    return this.#state === State.Size && this.#sizeDigits === 0
  }

  /** Reading the trailer section (after the last chunk's size line). */
  get inTrailer(): boolean {
    return this.#state === State.Trailer || this.#state === State.Done
  }

  /** Offset in the last decode() call's buffer where the trailer section began, or -1. */
  trailerStart = -1

  /**
   * Decode `buf[start..]`, calling `onData` for each payload slice. Returns the offset after the
   * last byte consumed: the end of `buf`, or the end of the body when it finished earlier
   * (bytes after it belong to no response and make the connection unusable).
   */
  decode(buf: Uint8Array, start: number, onData: (slice: Uint8Array) => void, stopAtChunkEnd = false): number {
    let i = start
    const n = buf.length
    this.trailerStart = -1
    while (i < n) {
      switch (this.#state) {
        case State.Size: {
          const c = buf[i]!
          const digit = hexValue(c)
          if (digit >= 0) {
            if (++this.#sizeDigits > 13) throw new ChunkedDecodeError('chunk size too large')
            this.#size = this.#size * 16 + digit
            i++
          } else if (this.#sizeDigits === 0) {
            throw new ChunkedDecodeError('missing chunk size')
          } else {
            this.#extension = false
            this.#state = State.SizeLineRest
          }
          break
        }
        case State.SizeLineRest: {
          if (this.strict) {
            const c = buf[i++]!
            if (this.#cr) {
              if (c !== 10) throw new ChunkedDecodeError('CR without LF in chunk size line')
              this.#cr = false
              this.#endSizeLine(i)
            } else if (c === 13) this.#cr = true
            else if (c === 10) throw new ChunkedDecodeError('bare LF in chunk size line')
            else if ((c < 32 && c !== 9) || c === 127) throw new ChunkedDecodeError('control byte in chunk extension')
            // chunk-size [ BWS ";" chunk-ext ]: before the ";" only whitespace may follow the size.
            else if (c === 59) this.#extension = true
            else if (!this.#extension && c !== 32 && c !== 9) throw new ChunkedDecodeError('invalid byte after chunk size')
            break
          }
          // Skip extensions up to LF (tolerating a bare LF like most parsers).
          const lf = buf.indexOf(10, i)
          if (lf < 0) {
            i = n
            break
          }
          i = lf + 1
          this.#endSizeLine(i)
          break
        }
        case State.Data: {
          const take = Math.min(this.#remaining, n - i)
          onData(buf.subarray(i, i + take))
          i += take
          this.#remaining -= take
          if (this.#remaining === 0) this.#state = State.DataCr
          break
        }
        case State.DataCr:
          if (buf[i] === 13) {
            i++
            this.#state = State.DataLf
          } else if (buf[i] === 10 && !this.strict) {
            i++
            this.#state = State.Size
            if (stopAtChunkEnd) return i
          } else {
            throw new ChunkedDecodeError('missing CRLF after chunk data')
          }
          break
        case State.DataLf:
          if (buf[i] !== 10) throw new ChunkedDecodeError('missing LF after chunk data')
          i++
          this.#state = State.Size
          // The caller wants to end the body itself right after this chunk.
          if (stopAtChunkEnd) return i
          break
        case State.Trailer: {
          const c = buf[i++]!
          if (this.strict) {
            if (this.#cr && c !== 10) throw new ChunkedDecodeError('CR without LF in trailer')
            if (c === 10 && !this.#cr) throw new ChunkedDecodeError('bare LF in trailer')
            this.#cr = c === 13
            if (c === 13) continue
            // Trailer lines are field lines, "name: value" (RFC 9112 §7.1.2): anything else, such
            // as a request line, means the two ends could disagree on where the body stops.
            if (c === 10) {
              if (this.#trailerLine > 0 && !this.#colon) throw new ChunkedDecodeError('trailer line is not a field')
              this.#colon = false
            } else if (!this.#colon) {
              if (c === 58) {
                if (this.#trailerLine === 0) throw new ChunkedDecodeError('trailer field without a name')
                this.#colon = true
              } else if (!isTokenByte(c)) throw new ChunkedDecodeError('invalid trailer field name')
            } else if ((c < 32 && c !== 9) || c === 127) throw new ChunkedDecodeError('control byte in trailer')
          }
          if (c === 10) {
            if (this.#trailerLine === 0) {
              this.#state = State.Done
              return i
            }
            this.#trailerLine = 0
          } else if (c !== 13) {
            this.#trailerLine++
          }
          break
        }
        case State.Done:
          return i
      }
    }
    return i
  }

  #endSizeLine(at: number): void {
    if (this.#size === 0) {
      this.#state = State.Trailer
      this.trailerStart = at
      this.#trailerLine = 0
    } else {
      this.#remaining = this.#size
      this.#state = State.Data
    }
    this.#size = 0
    this.#sizeDigits = 0
  }
}

/** RFC 9110 §5.6.2 tchar. */
function isTokenByte(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}
