import type { PolicyIr } from '../kind.ts'

/**
 * `perConsumer`: one feature whose configuration depends on who authenticated (Kong's plugins
 * attached to a KongConsumer: a consumer's own rate limit, say). Every entry is the same feature
 * (`feature`); the authenticated consumer's entry applies, else `otherwise` (the route's own
 * configuration, when it has one), else nothing.
 */
export interface PerConsumerSpec {
  readonly feature: string
  /** Consumer id → the feature as configured for that consumer. */
  readonly byConsumer: Readonly<Record<string, PolicyIr>>
  readonly otherwise?: PolicyIr
}

declare module '../kind.ts' {
  interface PolicySpecs {
    perConsumer: PerConsumerSpec
  }
}
