/**
 * `requestTransform` and `responseTransform`: header (and request query) edits in Kong's order,
 * remove → rename → replace → add → append (Kong's request-transformer and response-transformer;
 * Portico policies may use them too). Header names lower-case; query names as written.
 *  - remove: drop the field; rename: move its value to a new name (only when present);
 *  - replace: set only when present; add: set only when absent; append: add a value.
 */
export interface TransformSet {
  readonly remove: readonly string[]
  readonly rename: readonly (readonly [string, string])[]
  readonly replace: readonly (readonly [string, string])[]
  readonly add: readonly (readonly [string, string])[]
  readonly append: readonly (readonly [string, string])[]
}

export interface RequestTransformSpec {
  readonly headers: TransformSet
  readonly query: TransformSet
  /** Replace the upstream path (Kong's replace.uri), when set. */
  readonly path?: string
}

export interface ResponseTransformSpec {
  readonly headers: TransformSet
}

declare module '../kind.ts' {
  interface PolicySpecs {
    requestTransform: RequestTransformSpec
    responseTransform: ResponseTransformSpec
  }
}
