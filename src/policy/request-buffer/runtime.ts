/**
 * Nothing runs per request: the limit is read at compile time into RoutePlan.requestBufferBytes
 * (dataplane/snapshot.ts) and the HTTP front buffers by it; the chain entry is a head-only no-op,
 * so a rule keeps the front's direct path.
 */
import type { CompiledPolicy, PolicyRuntime } from '../runtime.ts'
import './spec.ts'

const NOTHING: CompiledPolicy = { headOnly: true }

export const requestBufferRuntime: PolicyRuntime<'requestBuffer'> = { name: 'requestBuffer', phase: 'upstream', order: 4, compile: () => NOTHING }
