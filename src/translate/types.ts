/** The contract of translation: resources in, IR and computed status out. */
import type { Snapshot } from '../ir/types.ts'

export interface TranslateOptions {
  /** Only GatewayClasses with this spec.controllerName are ours. */
  readonly controllerName: string
  /** Address reported in Gateway status.addresses when the Gateway asks for none (default 127.0.0.1). */
  readonly defaultAddress?: string
  /**
   * IP addresses this host can serve on, besides loopback and the unspecified addresses.
   * A Gateway spec.addresses IP outside this set is AddressNotUsable.
   */
  readonly localAddresses?: readonly string[]
}

/** A Kubernetes condition as translation computes it (lastTransitionTime is stamped by status/). */
export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  observedGeneration?: number
  lastTransitionTime?: string
}

/** Computed `.status` per object, keyed like the store: "Kind/ns/name". Only objects we own get one. */
export type StatusMap = Record<string, Record<string, unknown>>

export interface TranslateResult {
  readonly ir: Snapshot
  readonly status: StatusMap
}
