/** `acl`: which consumer groups may call (Kong's acl plugin, groups from KongConsumer credentials). */
export interface AclSpec {
  /** The consumer must be in one of these groups (when set). */
  readonly allow?: readonly string[]
  /** The consumer must be in none of these groups (when set; Kong accepts allow or deny, not both). */
  readonly deny?: readonly string[]
  /** Do not send X-Consumer-Groups upstream. */
  readonly hideGroupsHeader: boolean
}

declare module '../kind.ts' {
  interface PolicySpecs {
    acl: AclSpec
  }
}
