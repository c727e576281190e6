/**
 * Address ranges as policies use them (trusted proxies, IP allow/deny rules): a list of CIDRs
 * (or bare addresses) compiled once into a matcher. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports) is matched as its IPv4 address.
 */
import { BlockList, isIP } from 'node:net'

export type AddressMatcher = (address: string) => boolean

/** Entries that are not addresses are skipped (translation already rejected them). */
export function cidrMatcher(cidrs: readonly string[]): AddressMatcher {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const slash = cidr.indexOf('/')
    const address = slash < 0 ? cidr : cidr.slice(0, slash)
    const family = isIP(address)
    if (family === 0) continue
    const prefix = slash < 0 ? (family === 4 ? 32 : 128) : Number(cidr.slice(slash + 1))
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6')
  }
  return (address) => {
    const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
    const family = isIP(a)
    return family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6')
  }
}
