import type { RequestState } from '../context.ts'
import type { Verdict } from '../../../policy/runtime.ts'

/** Request phase: edit the state, or answer directly (e.g. a CORS preflight). Pipeline only: it edits the RequestState. */
export type RequestFilter = (state: RequestState) => Verdict

/** Response phase: edit the headers that go back to the client. */
export type ResponseFilter = (state: RequestState, headers: Headers) => void

export interface CompiledFilters {
  readonly request: readonly RequestFilter[]
  readonly response: readonly ResponseFilter[]
}
