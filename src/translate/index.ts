/**
 * translate(view, opts) → { ir, status }: Gateway API resources in, the data plane's snapshot
 * and every computed status out. Pure (no clock, no I/O, no randomness) and total: bad input
 * becomes conditions, and a failure while translating one object is contained to that object.
 *
 * Order matters only where the spec says so: GatewayClasses decide which Gateways are ours,
 * Gateways decide listeners (and conflicts between them), routes attach to listeners, and
 * listener status is rendered last because it counts attached routes.
 *
 * translate() works from scratch (translate.ts); a Translator (translator.ts) gives the same
 * results while redoing only what changed since its previous call, for the control loop.
 */
export type { TranslateOptions, TranslateResult, StatusMap, Condition } from './types.ts'
export { translate } from './translate.ts'
export { Translator } from './translator.ts'
