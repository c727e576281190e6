import { scanFrom, usable, type PickInput, type Picker, type PoolMember } from './picker.ts'

export type HashSource = 'ClientIP' | 'Header' | 'Cookie'

/** Maglev lookup table size: a prime well above 100 × the members of any real pool (Envoy's default). */
export const DEFAULT_TABLE_SIZE = 65537

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016; Envoy's MaglevLoadBalancer): each
 * member fills the lookup table along its own permutation, taking turns, so every member owns
 * M/N entries (±1) and a member leaving moves only about its own 1/N of the keys. The table is
 * built once per pool and snapshot; a pick is one hash and one array read.
 *
 * A key whose owner is ejected or unhealthy is hashed again with a salt (up to 3 times), which
 * spreads that member's keys over the others instead of piling them on one neighbour; then a
 * scan. Requests without a key (missing header/cookie) go to a random member.
 */
export class ConsistentHashPicker implements Picker {
  readonly #table: Int32Array
  readonly #size: number
  /** Header names compare case-insensitively, cookie names exactly. */
  readonly #name: string

  constructor(
    private readonly members: readonly PoolMember[],
    private readonly source: HashSource,
    name = '',
    tableSize = DEFAULT_TABLE_SIZE,
  ) {
    this.#name = source === 'Header' ? name.toLowerCase() : name
    this.#size = tableSize
    this.#table = maglevTable(
      members.map((m) => m.state.key),
      tableSize,
    )
  }

  pick(input: PickInput): PoolMember | undefined {
    const n = this.members.length
    if (n === 0) return undefined
    const key = input.hashKey ?? this.#key(input)
    if (key === undefined) return scanFrom(this.members, Math.floor(Math.random() * n), input)
    let owner = this.ownerIndex(key)
    for (let salt = 1; salt <= 3; salt++) {
      const member = this.members[owner]!
      if (member !== input.avoid && !input.tried?.has(member) && usable(member, input.now)) return member
      owner = this.ownerIndex(`${key}#${salt}`)
    }
    return scanFrom(this.members, owner, input)
  }

  /** The member index that owns `key` in the table (health ignored). */
  ownerIndex(key: string): number {
    return this.#table[fnv1a(key) % this.#size]!
  }

  #key(input: PickInput): string | undefined {
    if (this.source === 'ClientIP') return input.clientIp || undefined
    if (this.source === 'Header') return input.headers.get(this.#name) ?? undefined
    return cookieValue(input.headers.get('cookie'), this.#name)
  }
}

/** The Maglev lookup table: entry → member index. `size` must be prime (and > members). */
export function maglevTable(names: readonly string[], size: number): Int32Array {
  const table = new Int32Array(size).fill(-1)
  const n = names.length
  if (n === 0) return table
  const offsets = new Uint32Array(n)
  const skips = new Uint32Array(n)
  const next = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    offsets[i] = fnv1a(`${names[i]}#offset`) % size
    skips[i] = (fnv1a(`${names[i]}#skip`) % (size - 1)) + 1
  }
  let filled = 0
  while (true) {
    for (let i = 0; i < n; i++) {
      const offset = offsets[i]!
      const skip = skips[i]!
      let j = next[i]!
      let c = (offset + j * skip) % size
      while (table[c]! >= 0) {
        j++
        c = (offset + j * skip) % size
      }
      table[c] = i
      next[i] = j + 1
      if (++filled === size) return table
    }
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
