import type { RequestState } from '../context.ts'

/** Request phase: edit the state, or answer directly (e.g. a CORS preflight). */
export type RequestFilter = (state: RequestState) => Response | undefined

/** Response phase: edit the headers that go back to the client. */
export type ResponseFilter = (state: RequestState, headers: Headers) => void

export interface CompiledFilters {
  readonly request: readonly RequestFilter[]
  readonly response: readonly ResponseFilter[]
}
