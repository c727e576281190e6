/**
 * BackendTrafficPolicy `compression` / `compressor` (Envoy Gateway's
 * api/v1alpha1/compression_types.go): compress response bodies the client accepts, in the
 * encoding it prefers; on equal q-values the first configured encoding wins (Envoy's
 * `chooseFirst`).
 */

export type CompressionType = 'Gzip' | 'Brotli' | 'Zstd'

export interface CompressionEncoding {
  readonly type: CompressionType
  /**
   * Responses whose Content-Length is below this are sent as they are (bodies of unknown
   * length, i.e. streamed, are always compressed). Envoy Gateway's `minContentLength`.
   */
  readonly minContentLength: number
  /**
   * Gzip `compressionLevel` (1-9, default 6), Brotli `quality` (0-11, default 3), Zstd
   * `compressionLevel` (1-22, default 3): Envoy's defaults.
   */
  readonly level?: number
}

export interface CompressionSpec {
  /** In preference order: the first wins ties in the client's Accept-Encoding q-values. */
  readonly encodings: readonly CompressionEncoding[]
}

/**
 * Portico's default minimum size. Envoy's is 30 bytes; below about 1 KiB the saving is a few
 * hundred bytes at most and the CPU is not worth it (nginx's gzip_min_length is similar in spirit).
 */
export const DEFAULT_MIN_CONTENT_LENGTH = 1024

declare module '../kind.ts' {
  interface PolicySpecs {
    compression: CompressionSpec
  }
}
