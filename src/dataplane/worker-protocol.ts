/** Messages between the main thread and data-plane workers. */
import type { HttpLimits } from './http/limits.ts'
export type ToWorker =
  | { type: 'init'; index: number; hostname: string; logLevel: string; limits?: Partial<HttpLimits> }
  | { type: 'apply'; id: number; snapshot: Uint8Array }
  | { type: 'stop'; id: number; drainMs: number }

export type FromWorker = { type: 'ready' } | { type: 'applied'; id: number; problems: string[]; failedPorts: number[] } | { type: 'stopped'; id: number }
