/** What every config source (folder, Kubernetes API) gives the rest of the pipeline. */
import type { K8sObject } from '../store/kinds.ts'
import type { ManifestChange } from './manifests.ts'

/** A manifest or object that could not be loaded. Reported, never fatal. */
export interface LoadProblem {
  /** File path, or "kubernetes:<Kind>". */
  readonly origin: string
  /** 1-based line in the file where the offending document starts, when known. */
  readonly line?: number
  /** Store key of the object, when its kind and name could be read. */
  readonly objectKey?: string
  readonly message: string
}

export interface SourceSink {
  /**
   * Replace everything the source holds under `origin` with `objects`. Objects that the source
   * could not load are listed in `problems`; their last good version must be kept by the sink.
   * `change`, when given, says how `objects` differ from the array `change.after` (by identity),
   * which a sink may use if that is what it last applied for the origin.
   */
  replaceOrigin(origin: string, objects: readonly K8sObject[], problems: readonly LoadProblem[], change?: ManifestChange): void
  /** Forget an origin entirely (a deleted file). */
  dropOrigin(origin: string): void
}

export interface Source {
  readonly name: string
  /** Resolves once the initial state has been delivered to the sink. */
  start(sink: SourceSink): Promise<void>
  stop(): Promise<void>
}
