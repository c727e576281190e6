/**
 * File source: every *.yaml, *.yml and *.json under a folder (recursively, dot-entries skipped
 * so editors' temp files and Kubernetes ConfigMap "..data" links are not read twice).
 *
 * Watching: fs.watch gives prompt events but can miss some (a replaced directory, network
 * filesystems), so a slow poll backs it up. Either way the folder is rescanned and only files
 * whose content changed are re-parsed (a file whose stat is the same as when it was last read, long
 * enough ago, is not even read again); bursts of events (an editor's save, an atomic rename)
 * are coalesced into one rescan.
 */
import { statSync, watch, type BigIntStats, type FSWatcher } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import type { Logger } from '../telemetry/logger.ts'
import { ManifestMemo, parseManifests } from './manifests.ts'
import type { Source, SourceSink } from './source.ts'

const MANIFEST = /\.(ya?ml|json)$/i

export interface FileSourceOptions {
  readonly dir: string
  readonly logger: Logger
  /** Quiet period after the last event before rescanning. */
  readonly debounceMs?: number
  /** Safety-net rescan interval. */
  readonly pollMs?: number
}

export class FileSource implements Source {
  readonly name = 'file'
  #contents = new Map<string, string>()
  /** Per file, what stat said when it was last read, and whether that can be trusted (see #unchanged). */
  #stats = new Map<string, { readonly signature: string; readonly settled: boolean }>()
  /** Per file: its last parse, so an edit re-parses only the documents that changed. */
  #memos = new Map<string, ManifestMemo>()
  #watcher: FSWatcher | undefined
  #poll: ReturnType<typeof setInterval> | undefined
  #debounce: ReturnType<typeof setTimeout> | undefined
  #scanning: Promise<void> | undefined
  #rescanQueued = false
  #sink: SourceSink | undefined
  #stopped = false

  constructor(private readonly opts: FileSourceOptions) {}

  async start(sink: SourceSink): Promise<void> {
    this.#sink = sink
    const st = await stat(this.opts.dir).catch(() => undefined)
    if (!st?.isDirectory()) throw new Error(`config dir ${this.opts.dir} is not a directory`)
    await this.#scan()
    try {
      this.#watcher = watch(this.opts.dir, { recursive: true }, () => this.#schedule())
      this.#watcher.on('error', (err) => this.opts.logger.warn('config dir watch error; polling continues', { err }))
    } catch (err) {
      this.opts.logger.warn('cannot watch config dir; falling back to polling', { dir: this.opts.dir, err })
    }
    this.#poll = setInterval(() => this.#schedule(), this.opts.pollMs ?? 2000)
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#watcher?.close()
    clearInterval(this.#poll)
    clearTimeout(this.#debounce)
    await this.#scanning
  }

  #schedule(): void {
    if (this.#stopped) return
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => void this.#rescan(), this.opts.debounceMs ?? 3)
  }

  /** Serialises scans: an event during a scan queues exactly one more. */
  async #rescan(): Promise<void> {
    if (this.#scanning) {
      this.#rescanQueued = true
      return
    }
    this.#scanning = this.#scan().catch((err) => this.opts.logger.error('config dir scan failed', { err }))
    await this.#scanning
    this.#scanning = undefined
    if (this.#rescanQueued && !this.#stopped) {
      this.#rescanQueued = false
      await this.#rescan()
    }
  }

  async #scan(): Promise<void> {
    const sink = this.#sink!
    const files = await listManifests(this.opts.dir)
    const present = new Set(files)
    for (const file of [...this.#contents.keys()]) {
      if (present.has(file)) continue
      this.#contents.delete(file)
      this.#stats.delete(file)
      this.#memos.delete(file)
      sink.dropOrigin(file)
      this.opts.logger.info('manifest file removed', { file: this.#rel(file) })
    }
    for (const file of files) {
      const before = BigInt(Date.now()) * 1_000_000n
      // synchronous: microseconds on a local disk, where an await per file costs an event-loop
      // turn each while the data plane in this thread is busy (tens of files, one new route)
      let st: BigIntStats | undefined
      try {
        st = statSync(file, { bigint: true, throwIfNoEntry: false })
      } catch {
        st = undefined
      }
      if (st && this.#contents.has(file) && this.#unchanged(file, st)) continue
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch {
        continue // deleted or replaced between listing and reading; the next event rescans
      }
      if (st) this.#stats.set(file, { signature: signatureOf(st), settled: before - st.mtimeNs > SETTLED_NS && before - st.ctimeNs > SETTLED_NS })
      if (this.#contents.get(file) === text) continue
      this.#contents.set(file, text)
      let memo = this.#memos.get(file)
      if (!memo) this.#memos.set(file, (memo = new ManifestMemo()))
      const { objects, problems, change } = parseManifests(text, file, memo)
      for (const p of problems)
        this.opts.logger.error('invalid manifest; keeping the last good version', { file: this.#rel(file), line: p.line, object: p.objectKey, error: p.message })
      sink.replaceOrigin(file, objects, problems, change)
      this.opts.logger.debug('manifest file loaded', { file: this.#rel(file), objects: objects.length })
    }
  }

  /**
   * Whether a file is certainly what was read last time, without reading it: the same device,
   * inode, size, mtime and ctime as then, and its timestamps were already SETTLED_NS old when it
   * was read (a write in the same timestamp tick as the read could otherwise go unseen: git's
   * "racily clean" rule). A new route among 10,000 then does not re-read the 10,000-route file.
   */
  #unchanged(file: string, st: BigIntStats): boolean {
    const last = this.#stats.get(file)
    return last !== undefined && last.settled && last.signature === signatureOf(st)
  }

  #rel(file: string): string {
    return relative(this.opts.dir, file) || file
  }
}

/** Timestamps this much older than a read can no longer be shared by a later write (coarse-grained file systems included). */
const SETTLED_NS = 2_000_000_000n

function signatureOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
}

async function listManifests(dir: string): Promise<string[]> {
  const out: string[] = []
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    if (e.name.startsWith('.')) continue
    const full = join(dir, e.name)
    let isDir = e.isDirectory()
    let isFile = e.isFile()
    if (e.isSymbolicLink()) {
      const st = await stat(full).catch(() => undefined)
      isDir = !!st?.isDirectory()
      isFile = !!st?.isFile()
    }
    if (isDir) out.push(...(await listManifests(full)))
    else if (isFile && MANIFEST.test(e.name)) out.push(full)
  }
  return out.sort()
}
