/** Runtime pool: the IR pool's ready endpoints bound to registry state, plus one picker. */
import type { BackendPool, LoadBalancerPolicy } from '../../ir/types.ts'
import type { EndpointRegistry } from './registry.ts'
import type { PickInput, Picker, PoolMember } from './policies/picker.ts'
import { RoundRobinPicker } from './policies/round-robin.ts'
import { RandomPicker } from './policies/random.ts'
import { LeastRequestPicker } from './policies/least-request.ts'
import { ConsistentHashPicker } from './policies/consistent-hash.ts'
import { subjectAltNameCheck, type IdentityCheck } from './backend-identity.ts'

/** fetch()'s `tls` option for re-encryption to the backend (BackendTLSPolicy). */
export interface UpstreamTls {
  readonly serverName: string
  readonly ca?: string
  /** Set when the policy lists subjectAltNames: they replace the hostname check. */
  readonly checkServerIdentity?: IdentityCheck
}

export class RuntimePool {
  constructor(
    readonly key: string,
    readonly ir: BackendPool,
    readonly members: readonly PoolMember[],
    readonly picker: Picker,
    readonly tls: UpstreamTls | undefined,
  ) {}

  pick(input: PickInput): PoolMember | undefined {
    return this.picker.pick(input)
  }
}

export function buildPool(ir: BackendPool, registry: EndpointRegistry): RuntimePool {
  const scheme = ir.protocol === 'https' || ir.tls ? 'https' : 'http'
  const members: PoolMember[] = ir.endpoints.map((ep) => ({
    state: registry.endpoint(ep.address, ep.port),
    origin: `${scheme}://${ep.address.includes(':') ? `[${ep.address}]` : ep.address}:${ep.port}`,
  }))
  const tls = ir.tls
    ? {
        serverName: ir.tls.hostname,
        ...(ir.tls.caPem ? { ca: ir.tls.caPem } : {}),
        ...(ir.tls.subjectAltNames.length ? { checkServerIdentity: subjectAltNameCheck(ir.tls.subjectAltNames) } : {}),
      }
    : undefined
  return new RuntimePool(ir.key, ir, members, buildPicker(ir.policy, members), tls)
}

export function buildPicker(policy: LoadBalancerPolicy, members: readonly PoolMember[]): Picker {
  switch (policy.type) {
    case 'Random':
      return new RandomPicker(members)
    case 'LeastRequest':
      return new LeastRequestPicker(members)
    case 'ConsistentHash':
      return new ConsistentHashPicker(members, policy.source, policy.name)
    case 'RoundRobin':
    default:
      return new RoundRobinPicker(members)
  }
}
