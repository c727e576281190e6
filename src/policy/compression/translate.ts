/**
 * BackendTrafficPolicy's `compression` (deprecated in Envoy Gateway) and `compressor` fields:
 * their schema and the feature they make. BackendTrafficPolicy's translator
 * (src/policy/backend-traffic/translate.ts) spreads COMPRESSION_FIELDS into its schema and
 * calls compressionFeature(spec).
 *
 * Envoy Gateway's shape (api/v1alpha1/compression_types.go): a list of
 * `{type: Gzip | Brotli | Zstd, gzip?, brotli?, zstd?, minContentLength?}`, first = preferred on
 * equal q-values. `compressor` wins over `compression` when both are set.
 * Differences: a `compressor` entry without its type's block (`gzip: {}`) counts here (Envoy
 * Gateway skips it silently); of the per-type settings only the level is honoured
 * (gzip.compressionLevel, brotli.quality, zstd.compressionLevel); the other tuning knobs are
 * reported as not supported yet. minContentLength defaults to 1024 bytes (Envoy: 30).
 */
import { array, integer, object, quantity, string, unsupported, type Rule, type Schema } from '../schema.ts'
import type { Feature } from '../translators.ts'
import { DEFAULT_MIN_CONTENT_LENGTH, type CompressionEncoding, type CompressionSpec, type CompressionType } from './spec.ts'

const TYPES: readonly CompressionType[] = ['Gzip', 'Brotli', 'Zstd']
const BLOCK: Record<CompressionType, 'gzip' | 'brotli' | 'zstd'> = { Gzip: 'gzip', Brotli: 'brotli', Zstd: 'zstd' }

const onlyWith = (block: string, type: CompressionType): Rule => ({
  cel: `!has(self.${block}) || self.type == '${type}'`,
  message: `The ${block} configuration is only allowed when the type is ${type}.`,
  check: (v) => v[block] === undefined || v[block] === null || v.type === type,
})

const entry = object(
  {
    type: string({ enum: TYPES, description: 'Gzip, Brotli or Zstd.' }),
    gzip: object({
      compressionLevel: integer({ minimum: 1, maximum: 9, description: 'zlib level, 1 (fastest) to 9 (smallest); default 6.' }),
      compressionStrategy: unsupported(),
      memoryLevel: unsupported(),
      windowBits: unsupported(),
      chunkSize: unsupported(),
    }),
    brotli: object({
      quality: integer({ minimum: 0, maximum: 11, description: 'Brotli quality, 0 (fastest) to 11 (smallest); default 3.' }),
      encoderMode: unsupported(),
      windowBits: unsupported(),
      inputBlockBits: unsupported(),
      chunkSize: unsupported(),
      disableLiteralContextModeling: unsupported(),
    }),
    zstd: object({
      compressionLevel: integer({ minimum: 1, maximum: 22, description: 'Zstandard level, 1 (fastest) to 22 (smallest); default 3.' }),
      enableChecksum: unsupported(),
      strategy: unsupported(),
      chunkSize: unsupported(),
    }),
    minContentLength: quantity('Responses with a Content-Length below this (bytes; "2Ki" and "10k" work) are not compressed; streamed bodies always are. Default 1024 (Envoy: 30).'),
  },
  { required: ['type'], rules: [onlyWith('gzip', 'Gzip'), onlyWith('brotli', 'Brotli'), onlyWith('zstd', 'Zstd')] },
)

/** The schema fields BackendTrafficPolicy adds for compression. */
export const COMPRESSION_FIELDS: Record<'compression' | 'compressor', Schema> = {
  compression: array(entry, { description: 'Deprecated: use compressor. Compress responses the client accepts (first = preferred on equal q-values).' }),
  compressor: array(entry, { description: 'Compress responses the client accepts: Gzip, Brotli, Zstd; the first is preferred on equal q-values.' }),
}

type Json = Record<string, any>

/** The `compression` feature of a spec that passed the schema, or undefined when it sets none. */
export function compressionFeature(spec: Json): Extract<Feature, { scope: 'request' }> | undefined {
  const list = (Array.isArray(spec.compressor) && spec.compressor.length > 0 ? spec.compressor : spec.compression) as Json[] | undefined
  if (!Array.isArray(list) || list.length === 0) return undefined
  const encodings: CompressionEncoding[] = []
  for (const item of list) {
    const type = item.type as CompressionType
    // Listed twice (a strategic merge key in Envoy Gateway): the first one counts.
    if (encodings.some((e) => e.type === type)) continue
    const block = item[BLOCK[type]] as Json | undefined
    const level: unknown = type === 'Brotli' ? block?.quality : block?.compressionLevel
    const minContentLength = item.minContentLength === undefined || item.minContentLength === null ? DEFAULT_MIN_CONTENT_LENGTH : quantityValue(item.minContentLength)
    encodings.push({ type, minContentLength, ...(typeof level === 'number' ? { level } : {}) })
  }
  const compression: CompressionSpec = { encodings }
  return { scope: 'request', name: 'compression', spec: compression }
}

const SUFFIX: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 }

/** A quantity the schema accepted (an integer, or digits with a k/M/G/Ki/Mi/Gi... suffix) in bytes. */
export function quantityValue(value: number | string): number {
  if (typeof value === 'number') return value
  const m = /^([0-9]+)([A-Za-z]*)$/.exec(value)!
  return Number(m[1]) * (SUFFIX[m[2]!] ?? 1)
}
