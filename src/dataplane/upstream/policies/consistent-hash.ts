import { scanFrom, type PickInput, type Picker, type PoolMember } from './picker.ts'

export type HashSource = 'ClientIP' | 'Header' | 'Cookie'

/** Virtual nodes per member: enough for an even spread on small pools, cheap to build. */
const VNODES = 100

/**
 * Ketama-style ring: the same key lands on the same member while the member set is stable,
 * and only ~1/n of keys move when a member joins or leaves. Requests without a key
 * (missing header/cookie) fall back to a random member.
 */
export class ConsistentHashPicker implements Picker {
  readonly #hashes: Uint32Array
  readonly #owners: Uint32Array

  /** Header names compare case-insensitively, cookie names exactly. */
  readonly #name: string

  constructor(
    private readonly members: readonly PoolMember[],
    private readonly source: HashSource,
    name = '',
  ) {
    this.#name = source === 'Header' ? name.toLowerCase() : name
    const points: [number, number][] = []
    members.forEach((member, index) => {
      for (let v = 0; v < VNODES; v++) points.push([fnv1a(`${member.state.key}#${v}`), index])
    })
    points.sort((a, b) => a[0] - b[0])
    this.#hashes = Uint32Array.from(points, (p) => p[0])
    this.#owners = Uint32Array.from(points, (p) => p[1])
  }

  pick(input: PickInput): PoolMember | undefined {
    const n = this.members.length
    if (n === 0) return undefined
    const key = this.#key(input)
    if (key === undefined) return scanFrom(this.members, Math.floor(Math.random() * n), input)
    const owner = this.#owners[this.#lowerBound(fnv1a(key)) % this.#owners.length]!
    return scanFrom(this.members, owner, input)
  }

  #key(input: PickInput): string | undefined {
    if (this.source === 'ClientIP') return input.clientIp || undefined
    if (this.source === 'Header') return input.headers.get(this.#name) ?? undefined
    return cookieValue(input.headers.get('cookie'), this.#name)
  }

  #lowerBound(hash: number): number {
    const hashes = this.#hashes
    let lo = 0
    let hi = hashes.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (hashes[mid]! < hash) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

export function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * 32-bit FNV-1a over UTF-16 code units, then murmur3's fmix32 finalizer. Plain FNV-1a barely
 * moves the high bits when only the last characters differ ("user-1", "user-2"), which put
 * whole families of keys on one ring arc; the finalizer spreads them.
 */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}
