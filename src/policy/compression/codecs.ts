/**
 * The encoders behind each CompressionType, and the body stream that uses them.
 *
 * Bun 1.4.5 has all three in node:zlib (createGzip, createBrotliCompress, createZstdCompress,
 * each with a flush()), and one-shot synchronous forms. CompressionStream is no use here: it
 * never flushes before the end (an SSE event would sit in it), and its brotli runs at quality
 * 11 (~28 ms for 16 KiB). A codec the runtime lacks is left out of negotiation (`available`).
 *
 * Two ways through, chosen per response:
 *  - whole: the body's Content-Length is known and its first chunk is all of it (what the
 *    HTTP/1.1 client hands over for most small and medium responses): one synchronous call,
 *    and the compressed bytes go out with their own Content-Length;
 *  - streamed: every upstream chunk is written to a zlib stream and flushed (Z_SYNC_FLUSH,
 *    BROTLI_OPERATION_FLUSH, ZSTD_e_flush), and what it gives back is sent at once, so SSE
 *    events and long-poll chunks keep arriving one by one (Envoy flushes per data frame too).
 * The output stream is pull-based with no queue of its own (highWaterMark 0): the upstream is
 * read only when the client side asks for more, so a slow client slows the backend read and
 * nothing piles up here but one chunk in flight.
 */
import zlib from 'node:zlib'
import type { CompressionType } from './spec.ts'
import type { Coding } from './negotiate.ts'

const C = zlib.constants

interface ZlibStream {
  write(chunk: Uint8Array): boolean
  flush(kind: number, callback: () => void): void
  end(): void
  destroy(): void
  on(event: 'data', listener: (chunk: Buffer) => void): void
  on(event: 'error', listener: (err: Error) => void): void
  once(event: 'end', listener: () => void): void
}

export interface Codec {
  readonly type: CompressionType
  /** The Content-Encoding token. */
  readonly coding: Coding
  whole(bytes: Uint8Array): Uint8Array
  stream(): ZlibStream
  readonly flushKind: number
}

type ZstdZlib = typeof zlib & {
  createZstdCompress?: (options?: { params?: Record<number, number> }) => ZlibStream
  zstdCompressSync?: (bytes: Uint8Array, options?: { params?: Record<number, number> }) => Uint8Array
}
const z = zlib as ZstdZlib

/** Whether this runtime can produce the encoding (Zstd needs node:zlib's zstd, Node 22.15+ / Bun 1.2.x+). */
export function available(type: CompressionType): boolean {
  return type !== 'Zstd' || (typeof z.createZstdCompress === 'function' && typeof z.zstdCompressSync === 'function')
}

/** Envoy's defaults: gzip level 6 (zlib's default), brotli quality 3, zstd level 3. */
export function codec(type: CompressionType, level: number | undefined): Codec {
  switch (type) {
    case 'Gzip': {
      const options = { level: level ?? 6 }
      return {
        type,
        coding: 'gzip',
        whole: (bytes) => Bun.gzipSync(bytes as Uint8Array<ArrayBuffer>, options as Bun.ZlibCompressionOptions),
        stream: () => zlib.createGzip(options) as unknown as ZlibStream,
        flushKind: C.Z_SYNC_FLUSH,
      }
    }
    case 'Brotli': {
      const quality = level ?? 3
      return {
        type,
        coding: 'br',
        whole: (bytes) => zlib.brotliCompressSync(bytes, { params: { [C.BROTLI_PARAM_QUALITY]: quality, [C.BROTLI_PARAM_SIZE_HINT]: bytes.byteLength } }),
        stream: () => zlib.createBrotliCompress({ params: { [C.BROTLI_PARAM_QUALITY]: quality } }) as unknown as ZlibStream,
        flushKind: C.BROTLI_OPERATION_FLUSH,
      }
    }
    case 'Zstd': {
      const params = { [C.ZSTD_c_compressionLevel]: level ?? 3 }
      return {
        type,
        coding: 'zstd',
        whole: (bytes) => z.zstdCompressSync!(bytes, { params }),
        stream: () => z.createZstdCompress!({ params }),
        flushKind: C.ZSTD_e_flush,
      }
    }
  }
}

/**
 * The compressed body. With a known length (the upstream's Content-Length) the first chunk is
 * read at once: when it is the whole body, the answer is the compressed bytes (sent with a
 * Content-Length, no stream machinery on the way out); otherwise a stream that starts with that
 * chunk. With an unknown length, a stream at once.
 */
export function compressBody(source: ReadableStream<Uint8Array>, codec: Codec, wholeLength: number | undefined): ReadableStream<Uint8Array> | Promise<Uint8Array | ReadableStream<Uint8Array>> {
  const reader = source.getReader()
  if (wholeLength === undefined) return compressStream(reader, codec)
  return reader.read().then(({ value, done }) => {
    if (done) return codec.whole(EMPTY)
    if (value.byteLength === wholeLength) return codec.whole(value)
    return compressStream(reader, codec, value)
  })
}

const readerOf = (stream: ReadableStream<Uint8Array>) => stream.getReader()
type Reader = ReturnType<typeof readerOf>

/** Chunk by chunk, flushed after each; `first` is a chunk already read from `reader`. */
export function compressStream(reader: Reader, codec: Codec, first?: Uint8Array): ReadableStream<Uint8Array> {
  const encoder = new Encoder(codec)
  let pending = first
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          let chunk = pending
          pending = undefined
          if (chunk === undefined) {
            const { value, done } = await reader.read()
            if (done) {
              const tail = await encoder.finish()
              if (tail.byteLength > 0) controller.enqueue(tail)
              controller.close()
              return
            }
            chunk = value
          }
          if (chunk.byteLength === 0) return
          const out = await encoder.push(chunk)
          if (out.byteLength > 0) controller.enqueue(out)
        } catch (err) {
          // The upstream body failed midway (or the encoder did): the client's body fails too, as
          // it would uncompressed; the zlib stream is released now rather than at GC.
          encoder.destroy()
          throw err
        }
      },
      cancel(reason) {
        encoder.destroy()
        return reader.cancel(reason)
      },
    },
    { highWaterMark: 0 },
  )
}

const EMPTY = new Uint8Array(0)

/** One zlib stream driven a chunk at a time: write, flush, hand back what came out. */
class Encoder {
  readonly #z: ZlibStream
  readonly #flushKind: number
  #out: Buffer[] = []
  #error: Error | undefined
  #fail: ((err: Error) => void) | undefined

  constructor(codec: Codec) {
    this.#z = codec.stream()
    this.#flushKind = codec.flushKind
    this.#z.on('data', (chunk) => this.#out.push(chunk))
    this.#z.on('error', (err) => {
      this.#error = err
      this.#fail?.(err)
    })
  }

  push(chunk: Uint8Array): Promise<Uint8Array> {
    return this.#settle((done) => {
      this.#z.write(chunk)
      this.#z.flush(this.#flushKind, done)
    })
  }

  finish(): Promise<Uint8Array> {
    return this.#settle((done) => {
      this.#z.once('end', done)
      this.#z.end()
    })
  }

  destroy(): void {
    this.#z.destroy()
  }

  #settle(start: (done: () => void) => void): Promise<Uint8Array> {
    if (this.#error) return Promise.reject(this.#error)
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#fail = reject
      start(() => {
        this.#fail = undefined
        const out = this.#out
        this.#out = []
        resolve(out.length === 1 ? out[0]! : Buffer.concat(out))
      })
    })
  }
}
