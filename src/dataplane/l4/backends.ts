/**
 * Per-route backend choice for L4 connections and UDP sessions: first a weighted pick among the
 * route's backendRefs, then the pool's own load-balancing picker (shared with the HTTP data plane
 * through upstream/) chooses the endpoint.
 */
import type { BackendPool, BackendTls, WeightedBackend } from '../../ir/types.ts'
import { subjectAltNameCheck } from '../upstream/backend-identity.ts'
import { buildPool, type RuntimePool, type UpstreamTls } from '../upstream/pool.ts'
import type { PoolMember } from '../upstream/policies/picker.ts'
import type { EndpointRegistry } from '../upstream/registry.ts'
import { variantIr, variantKey, type BackendSettings } from '../upstream/variants.ts'

export type BackendChoice =
  /** `tls`: re-encrypt to the endpoint (BackendTLSPolicy; TLSRoute on a Terminate listener only). */
  | { readonly kind: 'endpoint'; readonly member: PoolMember; readonly pool: RuntimePool; readonly tls?: UpstreamTls }
  /** The connection must be refused: invalid backendRef, no backends, or no ready endpoint. */
  | { readonly kind: 'reject'; readonly reason: string }

interface WeightedOption {
  readonly weight: number
  readonly pool?: RuntimePool
  readonly invalid?: string
  readonly tls?: UpstreamTls
}

/** L4 has no request headers; pickers that hash on a header simply see none. */
const NO_HEADERS = new Headers()

/** Another endpoint of `pool` after `avoid` refused, never one in `tried`. */
export function retryChoice(pool: RuntimePool, clientIp: string, avoid: PoolMember, tried: ReadonlySet<PoolMember> | undefined): BackendChoice {
  const member = pool.pick({ clientIp, headers: NO_HEADERS, now: Date.now(), avoid, tried })
  if (!member) return { kind: 'reject', reason: `every endpoint of ${pool.key} refused` }
  return { kind: 'endpoint', member, pool }
}

/**
 * Smooth weighted round-robin (nginx): deterministic, exact proportions over every sum-of-weights
 * window, and no bursts towards the heavy backend. Zero-weight options are never chosen.
 */
export class BackendChooser {
  /** Every option, zero weights included (endpointKeys). */
  readonly #all: readonly WeightedOption[]
  readonly #options: WeightedOption[]
  readonly #current: number[]
  readonly #totalWeight: number

  constructor(options: readonly WeightedOption[]) {
    this.#all = options
    this.#options = options.filter((option) => option.weight > 0)
    this.#current = this.#options.map(() => 0)
    this.#totalWeight = this.#options.reduce((sum, option) => sum + option.weight, 0)
  }

  /** `avoid` is the endpoint a failed connect attempt just used; a retry prefers another one. */
  choose(clientIp: string, avoid?: PoolMember): BackendChoice {
    const option = this.#next()
    if (!option) return { kind: 'reject', reason: 'route has no backend with a positive weight' }
    if (option.invalid !== undefined) return { kind: 'reject', reason: option.invalid }
    if (!option.pool) return { kind: 'reject', reason: 'backend pool missing from snapshot' }
    const member = option.pool.pick({ clientIp, headers: NO_HEADERS, now: Date.now(), avoid })
    if (!member) return { kind: 'reject', reason: `no ready endpoints in ${option.pool.key}` }
    return option.tls ? { kind: 'endpoint', member, pool: option.pool, tls: option.tls } : { kind: 'endpoint', member, pool: option.pool }
  }

  /**
   * Endpoint keys ("address:port") of every backendRef of the route, zero weights included: the
   * endpoints open connections and UDP sessions may keep after a swap (plan.ts liveRoutes).
   */
  endpointKeys(): Set<string> {
    const keys = new Set<string>()
    for (const option of this.#all) for (const member of option.pool?.members ?? []) keys.add(member.state.key)
    return keys
  }

  #next(): WeightedOption | undefined {
    const options = this.#options
    if (options.length <= 1) return options[0]
    let best = 0
    for (let i = 0; i < options.length; i++) {
      this.#current[i]! += options[i]!.weight
      if (this.#current[i]! > this.#current[best]!) best = i
    }
    this.#current[best]! -= this.#totalWeight
    return options[best]
  }
}

/** Builds each referenced pool once per snapshot so routes sharing a Service share its picker. */
export class PoolCache {
  readonly #built = new Map<string, RuntimePool | undefined>()

  constructor(
    private readonly pools: Readonly<Record<string, BackendPool>>,
    private readonly registry: EndpointRegistry,
  ) {}

  /**
   * `settings` (BackendTrafficPolicy on the route): its backends go through pool variants "<pool>#<id>".
   * `reencrypt` (TLSRoute on a Terminate listener): a backend's BackendTLSPolicy applies; an
   * invalid one refuses the connection rather than send plaintext.
   */
  chooser(backends: readonly WeightedBackend[], settings?: BackendSettings, reencrypt = false): BackendChooser {
    return new BackendChooser(
      backends.map((backend) => {
        const policy = reencrypt ? backend.backendTls : undefined
        const invalid = backend.invalid ?? (policy && 'invalid' in policy ? `BackendTLSPolicy: ${policy.invalid}` : undefined)
        return {
          weight: backend.weight,
          invalid,
          pool: backend.target ? this.#pool(backend.target.pool, settings?.pool ? settings : undefined) : undefined,
          ...(policy && !('invalid' in policy) ? { tls: upstreamTls(policy) } : {}),
        }
      }),
    )
  }

  #pool(key: string, settings: BackendSettings | undefined): RuntimePool | undefined {
    const built = settings ? variantKey(key, settings) : key
    if (!this.#built.has(built)) {
      const ir = this.pools[key]
      this.#built.set(built, ir ? buildPool(settings ? variantIr(ir, settings) : ir, this.registry) : undefined)
    }
    return this.#built.get(built)
  }
}

/** node:tls connect options for a BackendTLSPolicy, as HTTP pools use them (upstream/pool.ts). */
function upstreamTls(policy: BackendTls): UpstreamTls {
  return {
    serverName: policy.hostname,
    ...(policy.caPem ? { ca: policy.caPem } : {}),
    ...(policy.subjectAltNames.length ? { checkServerIdentity: subjectAltNameCheck(policy.subjectAltNames) } : {}),
  }
}
