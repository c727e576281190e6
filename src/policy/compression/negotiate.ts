/**
 * Which responses compression may touch, and which encoding a client gets: pure functions over
 * strings, unit-tested on their own (test/policy/compression.test.ts).
 */

/** HTTP content-coding tokens, as they appear in Accept-Encoding and Content-Encoding. */
export type Coding = 'gzip' | 'br' | 'zstd'

/**
 * The coding to use among `offered` (in preference order) for this Accept-Encoding, or
 * undefined for identity. RFC 9110 §12.5.3:
 *  - each coding's weight is its own entry's q, else that of `*`, else 0 (not acceptable);
 *  - the highest weight above 0 wins, ties go to the earlier offered coding;
 *  - `x-gzip` is `gzip`; codings are case-insensitive; a malformed q drops its entry;
 *  - no header, an empty header or `identity` alone: identity. (`identity;q=0` with nothing
 *    else acceptable still gets identity: answering 406 would break more than it fixes.)
 */
export function negotiate(acceptEncoding: string | null, offered: readonly Coding[]): Coding | undefined {
  if (acceptEncoding === null || acceptEncoding.length === 0) return undefined
  let star = -1
  const weights: Partial<Record<Coding, number>> = {}
  for (const part of acceptEncoding.split(',')) {
    const semi = part.indexOf(';')
    let token = (semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase()
    if (token === '') continue
    let q = 1
    if (semi >= 0) {
      const parsed = qValue(part.slice(semi + 1))
      if (parsed === undefined) continue
      q = parsed
    }
    if (token === 'x-gzip') token = 'gzip'
    if (token === '*') star = Math.max(star, q)
    else if (token === 'gzip' || token === 'br' || token === 'zstd') weights[token] = Math.max(weights[token] ?? -1, q)
  }
  let best: Coding | undefined
  let bestQ = 0
  for (const coding of offered) {
    const q = weights[coding] ?? (star >= 0 ? star : 0)
    if (q > bestQ) {
      best = coding
      bestQ = q
    }
  }
  return best
}

/** The weight in parameters like " q=0.5" (other parameters ignored); undefined when malformed. */
function qValue(params: string): number | undefined {
  let q = 1
  for (const param of params.split(';')) {
    const eq = param.indexOf('=')
    if (eq < 0) continue
    if (param.slice(0, eq).trim().toLowerCase() !== 'q') continue
    const value = param.slice(eq + 1).trim()
    if (!/^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value)) return undefined
    q = Number(value)
  }
  return q
}

/** Exact media types worth compressing (besides text/* and the +json / +xml suffixes). */
const COMPRESSIBLE = new Set([
  'application/json',
  'application/x-json',
  'application/ndjson',
  'application/x-ndjson',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/graphql',
  'application/wasm',
  'application/x-www-form-urlencoded',
  'application/vnd.ms-fontobject',
  'application/x-font-ttf',
  'font/ttf',
  'font/otf',
  'image/svg+xml',
  'image/x-icon',
  'image/vnd.microsoft.icon',
  'image/bmp',
])

/**
 * Whether a Content-Type is compressible: text/* (HTML, CSS, plain, event streams...), JSON,
 * JavaScript, XML, SVG, WebAssembly, uncompressed fonts and anything with a +json or +xml
 * suffix. Images, video, archives and fonts that are compressed already (woff, woff2) are not;
 * neither is a response without a Content-Type.
 */
export function compressibleType(contentType: string | null): boolean {
  if (contentType === null) return false
  const semi = contentType.indexOf(';')
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  if (type.startsWith('text/')) return true
  if (COMPRESSIBLE.has(type)) return true
  return type.endsWith('+json') || type.endsWith('+xml')
}

/**
 * Why a response is left as it is, before looking at the client: undefined when it may be
 * compressed (and so varies by Accept-Encoding).
 */
export function ineligible(method: string, status: number, headers: Headers, minLength: number): string | undefined {
  if (method === 'HEAD') return 'HEAD'
  if (status < 200 || status === 204 || status === 304) return 'no body'
  if (status === 206 || headers.has('content-range')) return 'range'
  if (headers.has('content-encoding')) return 'already encoded'
  if (!compressibleType(headers.get('content-type'))) return 'content type'
  const cacheControl = headers.get('cache-control')
  if (cacheControl !== null && /(^|[\s,])no-transform([\s,]|$)/i.test(cacheControl)) return 'no-transform'
  const length = headers.get('content-length')
  if (length !== null && Number(length) < minLength) return 'small'
  return undefined
}

/** Vary plus Accept-Encoding, unless it is there already or Vary is `*`. */
export function varyWithAcceptEncoding(vary: string | null): string | undefined {
  if (vary === null || vary.trim() === '') return 'Accept-Encoding'
  for (const field of vary.split(',')) {
    const name = field.trim().toLowerCase()
    if (name === '*' || name === 'accept-encoding') return undefined
  }
  return `${vary}, Accept-Encoding`
}

/** A strong ETag names exact bytes; the compressed body is another representation: weak. */
export function weakETag(etag: string): string {
  return etag.startsWith('W/') ? etag : `W/${etag}`
}
