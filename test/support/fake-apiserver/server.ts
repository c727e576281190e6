/**
 * A stand-in Kubernetes API server on Bun.serve, faithful in the ways a controller notices:
 * discovery, a global resourceVersion counter, generation bumps on spec changes only, the
 * status subresource, no-op writes that change nothing, optimistic concurrency (409), merge /
 * strategic / JSON patches, label and field selectors, and watches that replay from a
 * resourceVersion, send bookmarks, and answer 410 Gone once that version left the window.
 * kubectl talks to it (see test/kubernetes/kubectl.test.ts), which keeps it from drifting into a toy.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Server } from 'bun'
import { stringify } from 'yaml'
import { generatePki, type TestPki } from './certs.ts'
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from './patch.ts'
import { apiVersionOf, DEFAULT_RESOURCES, storageKey, type ResourceType } from './resources.ts'
import { parseFieldSelector, parseLabelSelector } from './selectors.ts'
import { metadataProblems, statusProblems } from './validate.ts'

export interface FakeApiServerOptions {
  /** Serve HTTPS with a generated CA (default true). */
  readonly tls?: boolean
  /** How clients authenticate: a client certificate (default with TLS), a bearer token, or not at all. */
  readonly auth?: 'client-cert' | 'token' | 'none'
  readonly token?: string
  readonly resources?: readonly ResourceType[]
  /** How many events a watch can replay from; older resourceVersions get 410 Gone. */
  readonly watchWindow?: number
  readonly bookmarkIntervalMs?: number
  /** How an expired watch is refused: an ERROR event in a 200 stream (watch cache) or a plain 410 response. */
  readonly expiredWatch?: 'event' | 'status'
  readonly pki?: TestPki
  readonly port?: number
}

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly contentType: string | null
  readonly userAgent: string | null
  readonly body?: unknown
}

interface WatchEvent {
  readonly rv: number
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'
  readonly skey: string
  readonly object: any
  readonly old?: any
}

interface Watcher {
  readonly skey: string
  readonly type: ResourceType
  readonly version: string
  readonly namespace: string | undefined
  readonly matches: (o: any) => boolean
  readonly controller: ReadableStreamDefaultController<Uint8Array>
  readonly timers: Timer[]
  closed: boolean
}

class ApiError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: Record<string, unknown>) {
    super(message)
  }
}

const encoder = new TextEncoder()
const clone = <T>(v: T): T => structuredClone(v)
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z')
// groups compiled into kube-apiserver (strategic merge patch, lists without apiVersion/kind); the
// last five are served only when a test asks for them (test/kubernetes/deploy-apply.test.ts)
const BUILT_IN_GROUPS = ['', 'discovery.k8s.io', 'coordination.k8s.io', 'apps', 'rbac.authorization.k8s.io', 'policy', 'networking.k8s.io', 'apiextensions.k8s.io']
const PRECREATED_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease']

export class FakeApiServer {
  readonly pki: TestPki | undefined
  readonly token: string
  /** Every request but watches, in order. */
  readonly requests: RecordedRequest[] = []
  /** Every watch request: which resource, from which resourceVersion. */
  readonly watchRequests: { plural: string; resourceVersion: string }[] = []
  #server: Server<undefined>
  #types: readonly ResourceType[]
  #objects = new Map<string, Map<string, any>>()
  #rv = 0
  #log: WatchEvent[] = []
  #compactedRv = 0
  #watchers = new Set<Watcher>()
  #unavailable = false
  readonly #opts: FakeApiServerOptions

  constructor(opts: FakeApiServerOptions = {}) {
    this.#opts = opts
    const tls = opts.tls ?? true
    this.pki = tls ? opts.pki ?? generatePki() : undefined
    this.token = opts.token ?? 'portico-test-token'
    this.#types = opts.resources ?? DEFAULT_RESOURCES
    for (const t of this.#types) this.#objects.set(storageKey(t), new Map())
    for (const ns of PRECREATED_NAMESPACES) this.create(this.#byKind('Namespace'), undefined, { metadata: { name: ns } }, 'kube-apiserver')
    this.#server = this.#listen(opts.port ?? 0)
  }

  #listen(port: number): Server<undefined> {
    const auth = this.#opts.auth ?? (this.pki ? 'client-cert' : 'none')
    return Bun.serve({
      port,
      hostname: '127.0.0.1',
      // client certificates are verified in the handshake, as kube-apiserver's --client-ca-file does
      tls: this.pki ? { cert: this.pki.serverCert, key: this.pki.serverKey, ca: this.pki.caCert, requestCert: auth === 'client-cert', rejectUnauthorized: auth === 'client-cert' } : undefined,
      fetch: (req, server) => this.#handle(req, server, auth),
    })
  }

  get url(): string {
    return `${this.pki ? 'https' : 'http'}://127.0.0.1:${this.#server.port}`
  }

  get port(): number {
    return this.#server.port ?? 0
  }

  get resourceVersion(): number {
    return this.#rv
  }

  get watchCount(): number {
    return this.#watchers.size
  }

  /** Open watches on one resource (by plural, e.g. "httproutes"). */
  watchersOf(plural: string): number {
    return [...this.#watchers].filter((w) => w.type.plural === plural).length
  }

  /** A kubeconfig (YAML) for this server: CA, and a client certificate or token, inline. */
  kubeconfig(): string {
    const b64 = (s: string) => Buffer.from(s).toString('base64')
    const cluster: Record<string, string> = { server: this.url }
    if (this.pki) cluster['certificate-authority-data'] = b64(this.pki.caCert)
    const auth = this.#opts.auth ?? (this.pki ? 'client-cert' : 'none')
    const user: Record<string, string> =
      auth === 'client-cert' && this.pki ? { 'client-certificate-data': b64(this.pki.clientCert), 'client-key-data': b64(this.pki.clientKey) } : auth === 'token' ? { token: this.token } : {}
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster }],
      users: [{ name: 'fake-user', user }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake-user', namespace: 'default' } }],
      'current-context': 'fake',
    })
  }

  writeKubeconfig(dir = mkdtempSync(join(tmpdir(), 'portico-kubeconfig-'))): string {
    const path = join(dir, 'kubeconfig')
    writeFileSync(path, this.kubeconfig())
    return path
  }

  /**
   * Cuts every open watch. Clean: the stream ends as at a server-side timeout. Abrupt (default):
   * every connection is reset, as when an API server restarts or a load balancer drops idle
   * connections; the server listens again on the same port right away.
   */
  async dropWatches({ clean = false }: { clean?: boolean } = {}): Promise<void> {
    for (const w of [...this.#watchers]) this.#closeWatcher(w, clean)
    if (clean) return
    const port = this.port
    await this.#server.stop(true)
    this.#server = this.#listen(port)
  }

  /** Forgets the event history, as etcd compaction does: any older resourceVersion now gets 410 Gone. */
  compact(): void {
    this.#log = []
    this.#compactedRv = this.#rv
  }

  /** While unavailable every request gets 503, as during an API server restart behind a load balancer. */
  async setUnavailable(unavailable: boolean): Promise<void> {
    this.#unavailable = unavailable
    if (unavailable) await this.dropWatches()
  }

  // ---- direct access for tests (no HTTP, same semantics) ----

  apply(object: any, manager = 'test'): any {
    const t = this.#byKind(object.kind)
    const ns = t.namespaced ? object.metadata?.namespace ?? 'default' : undefined
    const old = this.#bucket(t).get(this.#key(ns, object.metadata?.name))
    if (!old) return this.create(t, ns, clone(object), manager)
    const next = clone(object)
    next.metadata = { ...next.metadata, resourceVersion: old.metadata.resourceVersion }
    return this.update(t, ns, old.metadata.name, next, false, manager)
  }

  setStatus(kind: string, namespace: string | undefined, name: string, status: unknown): any {
    const t = this.#byKind(kind)
    const old = this.getObject(kind, namespace, name)
    if (!old) throw new Error(`${kind} ${namespace}/${name} not found`)
    return this.update(t, t.namespaced ? namespace : undefined, name, { ...old, status }, true, 'test')
  }

  remove(kind: string, namespace: string | undefined, name: string): void {
    const t = this.#byKind(kind)
    this.delete(t, t.namespaced ? namespace ?? 'default' : undefined, name)
  }

  getObject(kind: string, namespace: string | undefined, name: string): any | undefined {
    const t = this.#byKind(kind)
    const o = this.#bucket(t).get(this.#key(t.namespaced ? namespace ?? 'default' : undefined, name))
    return o ? this.#present(t, t.versions[0]!, o) : undefined
  }

  listObjects(kind: string): any[] {
    const t = this.#byKind(kind)
    return [...this.#bucket(t).values()].map((o) => this.#present(t, t.versions[0]!, o))
  }

  async stop(): Promise<void> {
    await this.dropWatches({ clean: true })
    await this.#server.stop(true)
  }

  // ---- storage ----

  #byKind(kind: string): ResourceType {
    const t = this.#types.find((x) => x.kind === kind)
    if (!t) throw new Error(`kind ${kind} is not served`)
    return t
  }

  #bucket(t: ResourceType): Map<string, any> {
    return this.#objects.get(storageKey(t))!
  }

  #key(ns: string | undefined, name: string): string {
    return `${ns ?? ''}/${name}`
  }

  #present(t: ResourceType, version: string, o: any): any {
    return { apiVersion: apiVersionOf(t.group, version), kind: t.kind, ...clone(o) }
  }

  #managedFields(manager: string, operation: string, subresource?: string): any[] {
    // real servers record field ownership on every write; a watcher has to cope with (and should drop) it
    const entry: any = { manager, operation, time: now(), fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': {}, 'f:spec': {} } }
    if (subresource) entry.subresource = subresource
    return [entry]
  }

  create(t: ResourceType, ns: string | undefined, body: any, manager: string): any {
    if (body?.kind !== undefined && body.kind !== t.kind) throw new ApiError(400, 'BadRequest', `the kind of the provided object (${body.kind}) does not match the endpoint (${t.kind})`)
    body.metadata ??= {}
    if (t.namespaced) {
      if (body.metadata.namespace && body.metadata.namespace !== ns)
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request')
      body.metadata.namespace = ns
      if (!this.#bucket(this.#byKind('Namespace')).has(this.#key(undefined, ns!)))
        throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' })
    }
    if (!body.metadata.name && body.metadata.generateName) body.metadata.name = body.metadata.generateName + Math.random().toString(36).slice(2, 7)
    const problems = metadataProblems(body, t.namespaced, t.kind)
    if (problems.length) throw this.#invalid(t, body.metadata?.name, problems)
    const bucket = this.#bucket(t)
    const key = this.#key(ns, body.metadata.name)
    if (bucket.has(key)) throw new ApiError(409, 'AlreadyExists', `${t.plural}.${t.group || 'core'} "${body.metadata.name}" already exists`, this.#details(t, body.metadata.name))
    const { apiVersion: _a, kind: _k, ...rest } = body
    const o: any = clone(rest)
    delete o.metadata.deletionTimestamp
    o.metadata.uid = randomUUID()
    o.metadata.creationTimestamp = now()
    o.metadata.resourceVersion = String(++this.#rv)
    o.metadata.managedFields = this.#managedFields(manager, 'Update')
    if (t.generation) o.metadata.generation = 1
    else delete o.metadata.generation
    if (t.kind === 'Namespace') o.status = { phase: 'Active' }
    else if (t.kind === 'Service') o.status = { loadBalancer: {} }
    else if (t.status) delete o.status
    bucket.set(key, o)
    this.#emit({ rv: this.#rv, type: 'ADDED', skey: storageKey(t), object: o })
    return o
  }

  /** PUT semantics; `status` selects the /status subresource. */
  update(t: ResourceType, ns: string | undefined, name: string, body: any, status: boolean, manager: string, precondition = true): any {
    const old = this.#bucket(t).get(this.#key(ns, name))
    if (!old) throw new ApiError(404, 'NotFound', `${t.plural}.${t.group || 'core'} "${name}" not found`, this.#details(t, name))
    if (body?.metadata?.name !== undefined && body.metadata.name !== name)
      throw new ApiError(400, 'BadRequest', `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`)
    const rv = body?.metadata?.resourceVersion
    if (precondition) {
      if (rv === undefined || rv === '') {
        if (!t.unconditionalUpdate) throw this.#invalid(t, name, ['metadata.resourceVersion: Invalid value: 0x0: must be specified for an update'])
      } else if (rv !== old.metadata.resourceVersion) throw this.#conflict(t, name)
    }
    const { apiVersion: _a, kind: _k, ...rest } = clone(body ?? {})
    let next: any
    if (status) next = { ...clone(old), status: rest.status }
    else {
      next = { ...rest, metadata: { ...rest.metadata } }
      for (const f of ['name', 'namespace', 'uid', 'creationTimestamp', 'generation', 'managedFields'] as const) {
        if (old.metadata[f] === undefined) delete next.metadata[f]
        else next.metadata[f] = old.metadata[f]
      }
      if (t.status) {
        if (old.status === undefined) delete next.status
        else next.status = clone(old.status)
      }
    }
    if (next.status === undefined || next.status === null) delete next.status
    const problems = [...metadataProblems(next, t.namespaced, t.kind), ...(status ? statusProblems(t.kind, t.group, next.status) : [])]
    if (problems.length) throw this.#invalid(t, name, problems)
    const strip = (o: any) => {
      const { metadata, status: st, ...body } = o
      const { resourceVersion: _r, managedFields: _m, generation: _g, ...md } = metadata
      return JSON.stringify({ md, st, body })
    }
    if (strip(old) === strip(next)) return old // a no-op write changes nothing, not even resourceVersion
    if (t.generation && JSON.stringify(without(old, 'metadata', 'status')) !== JSON.stringify(without(next, 'metadata', 'status')))
      next.metadata.generation = (old.metadata.generation ?? 0) + 1
    next.metadata.resourceVersion = String(++this.#rv)
    next.metadata.managedFields = this.#managedFields(manager, 'Update', status ? 'status' : undefined)
    this.#bucket(t).set(this.#key(ns, name), next)
    this.#emit({ rv: this.#rv, type: 'MODIFIED', skey: storageKey(t), object: next, old })
    return next
  }

  patch(t: ResourceType, version: string, ns: string | undefined, name: string, body: unknown, contentType: string, status: boolean, manager: string): any {
    const old = this.#bucket(t).get(this.#key(ns, name))
    if (!old) throw new ApiError(404, 'NotFound', `${t.plural}.${t.group || 'core'} "${name}" not found`, this.#details(t, name))
    const current = this.#present(t, version, old)
    let patched: any
    try {
      if (contentType === 'application/merge-patch+json') patched = mergePatch(current, body)
      else if (contentType === 'application/json-patch+json') patched = jsonPatch(current, body)
      else if (contentType === 'application/strategic-merge-patch+json') {
        // as on a real server: custom resources have no patch strategy metadata
        if (!BUILT_IN_GROUPS.includes(t.group))
          throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`)
        patched = strategicMergePatch(current, body)
      } else throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`)
    } catch (err) {
      if (err instanceof PatchError) throw new ApiError(422, 'Invalid', err.message)
      throw err
    }
    // a resourceVersion in the patch is a precondition; otherwise the patch applies to the latest
    const rv = patched?.metadata?.resourceVersion
    if (rv !== undefined && rv !== old.metadata.resourceVersion) throw this.#conflict(t, name)
    return this.update(t, ns, name, patched, status, manager, false)
  }

  delete(t: ResourceType, ns: string | undefined, name: string): any {
    const bucket = this.#bucket(t)
    const key = this.#key(ns, name)
    const old = bucket.get(key)
    if (!old) throw new ApiError(404, 'NotFound', `${t.plural}.${t.group || 'core'} "${name}" not found`, this.#details(t, name))
    if (t.kind === 'Namespace') {
      // namespace deletion takes its contents with it
      for (const other of this.#types) if (other.namespaced) for (const o of [...this.#bucket(other).values()]) if (o.metadata.namespace === name) this.delete(other, name, o.metadata.name)
    }
    bucket.delete(key)
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.#rv) } }
    this.#emit({ rv: this.#rv, type: 'DELETED', skey: storageKey(t), object: gone })
    return gone
  }

  #details(t: ResourceType, name?: string) {
    return { name, group: t.group, kind: t.plural }
  }

  #invalid(t: ResourceType, name: string | undefined, problems: string[]): ApiError {
    return new ApiError(422, 'Invalid', `${t.kind}.${t.group || 'core'} "${name}" is invalid: ${problems.join(', ')}`, {
      ...this.#details(t, name),
      causes: problems.map((p) => ({ reason: 'FieldValueInvalid', message: p, field: p.split(':')[0] })),
    })
  }

  #conflict(t: ResourceType, name: string): ApiError {
    return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${t.plural}.${t.group || 'core'} "${name}": the object has been modified; please apply your changes to the latest version and try again`, this.#details(t, name))
  }

  // ---- watch ----

  #emit(ev: WatchEvent): void {
    this.#log.push(ev)
    const window = this.#opts.watchWindow ?? 1000
    while (this.#log.length > window) this.#compactedRv = this.#log.shift()!.rv
    for (const w of this.#watchers) if (w.skey === ev.skey) this.#deliver(w, ev)
  }

  #deliver(w: Watcher, ev: WatchEvent): void {
    const inScope = (o: any) => o !== undefined && (w.namespace === undefined || o.metadata.namespace === w.namespace) && w.matches(o)
    const now = inScope(ev.object)
    const before = ev.type === 'MODIFIED' ? inScope(ev.old) : now
    // an object moving into or out of a selector is ADDED or DELETED for that watcher, as on a real server
    let type: string = ev.type
    if (ev.type === 'MODIFIED' && now !== before) type = now ? 'ADDED' : 'DELETED'
    else if (!now && !before) return
    this.#send(w, { type, object: this.#present(w.type, w.version, ev.object) })
  }

  #send(w: Watcher, event: unknown): void {
    if (w.closed) return
    try {
      w.controller.enqueue(encoder.encode(JSON.stringify(event) + '\n'))
    } catch {
      this.#closeWatcher(w, false)
    }
  }

  /** `close`: end the stream cleanly; otherwise just forget it (its connection is about to be reset). */
  #closeWatcher(w: Watcher, close = true): void {
    if (w.closed) return
    w.closed = true
    for (const t of w.timers) clearTimeout(t)
    this.#watchers.delete(w)
    if (close)
      try {
        w.controller.close()
      } catch {}
  }

  #watch(t: ResourceType, version: string, ns: string | undefined, params: URLSearchParams, matches: (o: any) => boolean): Response {
    const rvParam = params.get('resourceVersion') ?? ''
    const fromState = rvParam === '' || rvParam === '0'
    const since = Number(rvParam)
    if (!fromState && !Number.isInteger(since)) throw new ApiError(400, 'BadRequest', `invalid resource version: ${rvParam}`)
    const expired = !fromState && since < this.#compactedRv
    const gone = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${since} (${this.#compactedRv})`, reason: 'Expired', code: 410 }
    if (expired && this.#opts.expiredWatch === 'status') throw new ApiError(410, 'Expired', gone.message)
    const bookmarks = ['1', 'true'].includes(params.get('allowWatchBookmarks') ?? '')
    const timeoutSeconds = Number(params.get('timeoutSeconds') ?? 1800)
    let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        controllerRef = controller
        const w: Watcher = { skey: storageKey(t), type: t, version, namespace: ns, matches, controller, timers: [], closed: false }
        if (expired) {
          this.#send(w, { type: 'ERROR', object: gone })
          controller.close()
          return
        }
        if (fromState) {
          for (const o of this.#bucket(t).values()) if ((ns === undefined || o.metadata.namespace === ns) && matches(o)) this.#send(w, { type: 'ADDED', object: this.#present(t, version, o) })
        } else for (const ev of this.#log) if (ev.rv > since && ev.skey === w.skey) this.#deliver(w, ev)
        this.#watchers.add(w)
        if (bookmarks) {
          const tick = () => {
            this.#send(w, { type: 'BOOKMARK', object: { kind: t.kind, apiVersion: apiVersionOf(t.group, version), metadata: { resourceVersion: String(this.#rv) } } })
            w.timers[0] = setTimeout(tick, this.#opts.bookmarkIntervalMs ?? 1000)
          }
          w.timers[0] = setTimeout(tick, this.#opts.bookmarkIntervalMs ?? 1000)
        }
        w.timers[1] = setTimeout(() => this.#closeWatcher(w), timeoutSeconds * 1000)
      },
      cancel: () => {
        // the client went away
        for (const w of this.#watchers) if (w.controller === controllerRef) this.#closeWatcher(w, false)
      },
    })
    return new Response(stream, { headers: { 'content-type': 'application/json', 'cache-control': 'no-cache, private' } })
  }

  // ---- HTTP ----

  async #handle(req: Request, server: Server<undefined>, auth: string): Promise<Response> {
    const url = new URL(req.url)
    try {
      if (this.#unavailable) throw new ApiError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request')
      if (auth === 'token' && req.headers.get('authorization') !== `Bearer ${this.token}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized')
      const segs = url.pathname.split('/').filter(Boolean)
      const body = ['POST', 'PUT', 'PATCH'].includes(req.method) ? await readBody(req) : undefined
      if (!url.searchParams.has('watch')) this.requests.push({ method: req.method, path: url.pathname + url.search, contentType: req.headers.get('content-type'), userAgent: req.headers.get('user-agent'), body })
      const discovery = this.#discovery(segs)
      if (discovery !== undefined) return json(200, discovery)
      if (['healthz', 'livez', 'readyz'].includes(segs[0] ?? '')) return new Response('ok')
      if (url.pathname === '/openapi/v2') return new Response(OPENAPI_V2_PROTOBUF, { headers: { 'content-type': 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf' } })
      let group: string, version: string, rest: string[]
      if (segs[0] === 'api' && segs[1]) [group, version, rest] = ['', segs[1], segs.slice(2)]
      else if (segs[0] === 'apis' && segs[1] && segs[2]) [group, version, rest] = [segs[1], segs[2], segs.slice(3)]
      else throw new ApiError(404, 'NotFound', 'the server could not find the requested resource')
      const served = (plural: string | undefined) => this.#types.find((t) => t.group === group && t.versions.includes(version) && t.plural === plural)
      let ns: string | undefined, plural: string | undefined, name: string | undefined, sub: string | undefined
      if (rest[0] === 'namespaces' && rest.length >= 3 && served(rest[2])?.namespaced) [ns, plural, name, sub] = [rest[1], rest[2], rest[3], rest[4]]
      else [plural, name, sub] = [rest[0], rest[1], rest[2]]
      const t = served(plural)
      if (!t || (ns !== undefined && !t.namespaced) || (t.namespaced && ns === undefined && name !== undefined) || (sub !== undefined && (sub !== 'status' || !t.status)) || rest.length > (ns ? 5 : 3))
        throw new ApiError(404, 'NotFound', 'the server could not find the requested resource')
      const manager = (req.headers.get('user-agent') ?? 'unknown').split('/')[0]!
      const present = (o: any) => this.#present(t, version, o)
      const status = sub === 'status'
      const contentType = (req.headers.get('content-type') ?? '').split(';')[0]!.trim()
      switch (req.method) {
        case 'GET': {
          if (name !== undefined) {
            const o = this.#bucket(t).get(this.#key(ns, name))
            if (!o) throw new ApiError(404, 'NotFound', `${t.plural}.${t.group || 'core'} "${name}" not found`, this.#details(t, name))
            return json(200, present(o))
          }
          let labels: ReturnType<typeof parseLabelSelector>, fields: ReturnType<typeof parseFieldSelector>
          try {
            labels = parseLabelSelector(url.searchParams.get('labelSelector'))
            fields = parseFieldSelector(url.searchParams.get('fieldSelector'))
          } catch (err) {
            throw new ApiError(400, 'BadRequest', (err as Error).message)
          }
          const matches = (o: any) => labels(o.metadata.labels ?? {}) && fields(o)
          if (['1', 'true'].includes(url.searchParams.get('watch') ?? '')) {
            server.timeout(req, 0) // a watch is long-lived; bookmarks keep it busy anyway
            this.watchRequests.push({ plural: t.plural, resourceVersion: url.searchParams.get('resourceVersion') ?? '' })
            return this.#watch(t, version, ns, url.searchParams, matches)
          }
          const items = [...this.#bucket(t).values()]
            .filter((o) => (ns === undefined || o.metadata.namespace === ns) && matches(o))
            .sort((a, b) => this.#key(a.metadata.namespace, a.metadata.name).localeCompare(this.#key(b.metadata.namespace, b.metadata.name)))
            .map(present)
          // as from a real server: items of built-in kinds' lists carry no apiVersion/kind, custom resources' do
          if (BUILT_IN_GROUPS.includes(t.group)) for (const item of items) delete item.apiVersion, delete item.kind
          return json(200, { kind: `${t.kind}List`, apiVersion: apiVersionOf(group, version), metadata: { resourceVersion: String(this.#rv) }, items })
        }
        case 'POST':
          if (name !== undefined || (t.namespaced && ns === undefined)) throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`)
          return json(201, present(this.create(t, ns, body, manager)))
        case 'PUT':
          if (name === undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
          return json(200, present(this.update(t, ns, name, body, status, manager)))
        case 'PATCH':
          if (name === undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
          return json(200, present(this.patch(t, version, ns, name, body, contentType, status, manager)))
        case 'DELETE':
          if (name === undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
          return json(200, present(this.delete(t, ns, name)))
        default:
          throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
      }
    } catch (err) {
      if (err instanceof ApiError)
        return json(err.code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.message, reason: err.reason, details: err.details, code: err.code })
      return json(500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: String(err), reason: 'InternalError', code: 500 })
    }
  }

  #discovery(segs: string[]): unknown {
    const path = segs.join('/')
    const groups = [...new Set(this.#types.filter((t) => t.group).map((t) => t.group))]
    const versionsOf = (g: string) => {
      // preferred first: the order of appearance across the group's types, v1 before betas before alphas
      const rank = (v: string) => (/^v\d+$/.test(v) ? 0 : /beta/.test(v) ? 1 : 2)
      const all = [...new Set(this.#types.filter((t) => t.group === g).flatMap((t) => t.versions))]
      return all.sort((a, b) => rank(a) - rank(b) || b.localeCompare(a, undefined, { numeric: true }))
    }
    const group = (g: string) => {
      const versions = versionsOf(g).map((v) => ({ groupVersion: `${g}/${v}`, version: v }))
      return { name: g, versions, preferredVersion: versions[0] }
    }
    const resources = (g: string, v: string) => ({
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: apiVersionOf(g, v),
      resources: this.#types
        .filter((t) => t.group === g && t.versions.includes(v))
        .flatMap((t) => {
          const main: Record<string, unknown> = {
            name: t.plural,
            singularName: t.singular,
            namespaced: t.namespaced,
            kind: t.kind,
            verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
          }
          if (t.shortNames) main.shortNames = t.shortNames
          if (t.categories) main.categories = t.categories
          const out = [main]
          if (t.status) out.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] })
          return out
        }),
    })
    if (path === 'version') return { major: '1', minor: '31', gitVersion: 'v1.31.0-portico-fake', platform: 'linux/amd64' }
    if (path === 'api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] }
    if (path === 'api/v1') return resources('', 'v1')
    if (path === 'apis') return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(group) }
    if (segs[0] === 'apis' && segs.length === 2 && groups.includes(segs[1]!)) return { kind: 'APIGroup', apiVersion: 'v1', ...group(segs[1]!) }
    if (segs[0] === 'apis' && segs.length === 3 && versionsOf(segs[1]!).includes(segs[2]!)) return resources(segs[1]!, segs[2]!)
    return undefined
  }
}

/**
 * kubectl downloads the OpenAPI v2 document (as protobuf) before it validates or patches. An empty
 * document (no schemas) makes it skip schema validation and use built-in patch strategies, as it
 * does for custom resources without schemas. Hand-encoded: swagger "2.0", info {title, version}.
 */
const OPENAPI_V2_PROTOBUF = (() => {
  const field = (tag: number, bytes: Uint8Array) => new Uint8Array([(tag << 3) | 2, bytes.length, ...bytes])
  const str = (tag: number, s: string) => field(tag, encoder.encode(s))
  const info = new Uint8Array([...str(1, 'Kubernetes'), ...str(2, 'v1.31.0')])
  return new Uint8Array([...str(1, '2.0'), ...field(2, info)])
})()

function without(o: any, ...keys: string[]): any {
  const out = { ...o }
  for (const k of keys) delete out[k]
  return out
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}

async function readBody(req: Request): Promise<unknown> {
  const text = await req.text()
  if (!text) return undefined
  try {
    return JSON.parse(text)
  } catch {
    // kubectl can send YAML only for apply-patch; everything else must be JSON
    throw new ApiError(400, 'BadRequest', 'the body of the request could not be decoded as JSON')
  }
}

export function startFakeApiServer(opts: FakeApiServerOptions = {}): FakeApiServer {
  return new FakeApiServer(opts)
}
