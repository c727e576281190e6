/**
 * Wires the pipeline: sources → store → translate → (validate) → data plane, status → sinks,
 * admin alongside. No logic of its own; each stage lives in its folder.
 */
import { resolve } from 'node:path'
import { createAdmin } from './admin/index.ts'
import { HttpDataplane } from './dataplane/http/server.ts'
import { L4Dataplane } from './dataplane/l4/server.ts'
import { WorkerPool } from './dataplane/worker-pool.ts'
import type { Snapshot } from './ir/types.ts'
import { Controller } from './pipeline/controller.ts'
import { FileSource } from './sources/file.ts'
import type { Source } from './sources/source.ts'
import { MemoryStatusSink } from './status/sink.ts'
import { StoreIngest } from './store/ingest.ts'
import { ResourceStore } from './store/store.ts'
import type { Logger } from './telemetry/logger.ts'
import { MetricsRegistry } from './telemetry/metrics.ts'
import { Translator } from './translate/index.ts'
import { KubeClient, KubernetesSource } from './sources/kubernetes/index.ts'
import { addressesFromService, KubernetesStatusSink } from './status/kubernetes.ts'
import { LeaseElector } from './status/leader.ts'
import { hostname as machineName } from 'node:os'
import type { HttpLimits } from './dataplane/http/limits.ts'

export interface PorticoOptions {
  readonly configDir: string
  readonly adminPort: number
  readonly adminAddress?: string
  readonly controllerName: string
  readonly bindAddress?: string
  readonly logger: Logger
  /** On stop: how long in-flight requests may take before connections are cut (default 15 s). */
  readonly drainTimeoutMs?: number
  /** On stop: how long to keep serving after /readyz turns 503, so load balancers notice (default 0). */
  readonly shutdownDelayMs?: number
  /** Data-plane worker threads sharing the listener ports; 1 (default) serves in this thread. */
  readonly workers?: number
  /** Log level handed to worker threads. */
  readonly logLevel?: string
  /** Kubernetes mode: watch the API server instead of the config folder, and write status back. */
  readonly kubernetes?: KubernetesModeOptions
  /** HTTP request limits and timeouts (dataplane/http/limits.ts); unset ones keep their defaults. */
  readonly limits?: Partial<HttpLimits>
}

export interface KubernetesModeOptions {
  /** Path to a kubeconfig; default ~/.kube/config, then the in-cluster service account. */
  readonly kubeconfig?: string
  readonly watchNamespace?: string
  readonly leaderElectionNamespace?: string
  readonly leaderElectionId?: string
  /** "ns/name" of the Service whose load-balancer addresses go into Gateway status. */
  readonly gatewayAddressService?: string
}

export interface Portico {
  /** The port the admin API listens on (useful when started with port 0). */
  readonly adminPort: number
  readonly controller: Controller
  readonly store: ResourceStore
  stop(): Promise<void>
}

export async function startPortico(opts: PorticoOptions): Promise<Portico> {
  const { logger } = opts
  const store = new ResourceStore()
  const ingest = new StoreIngest(store)
  const status = new MemoryStatusSink()
  const metrics = new MetricsRegistry()
  const hostname = opts.bindAddress ?? '0.0.0.0'
  const dataplane = (opts.workers ?? 1) > 1 ? workerDataplane(opts, hostname) : inThreadDataplane(logger, hostname, opts.limits)
  const kube = opts.kubernetes ? await kubernetesMode(opts, opts.kubernetes, store) : undefined
  // One Translator for the life of the process: it remembers unchanged routes between rebuilds.
  const translator = new Translator({ controllerName: opts.controllerName })
  const controller = new Controller({
    store,
    translate: (view) => translator.translate(view),
    consumers: [dataplane],
    sinks: kube ? [status, kube.sink] : [status],
    logger,
  })
  metrics.collect('portico_config_rebuilds_total', 'Rebuilds (translate, validate, apply) run so far', () => [[undefined, controller.rebuilds]], 'counter')
  metrics.collect('portico_config_revision', 'Store revision of the live snapshot', () => [[undefined, controller.live?.revision ?? 0]])
  metrics.collect('portico_config_rebuild_seconds', 'Duration of the latest rebuild (translate, validate, apply)', () => [[undefined, controller.lastRebuildMs / 1000]])
  metrics.collect('portico_config_load_problems', 'Manifests that failed to load', () => [[undefined, ingest.problems().length]])
  metrics.collect('portico_config_rejected', 'Problems that kept the latest snapshot from going live', () => [[undefined, controller.rejected.length]])
  controller.onLive(() => logger.info('first snapshot live: ready'))

  let draining = false
  const admin = createAdmin({
    ready: () => controller.live !== undefined && !draining,
    objects: () => store.all(),
    statusOf: (key) => status.get(key),
    problems: () => ingest.problems(),
    snapshot: () => controller.live,
    rejected: () => controller.rejected,
    metrics: () => metrics.render(),
  })
  const adminServer = Bun.serve({ port: opts.adminPort, hostname: opts.adminAddress ?? '0.0.0.0', fetch: (req) => admin.handle(req) })
  logger.info('admin API listening', { port: adminServer.port })

  const configDir = resolve(opts.configDir)
  const source: Source = kube?.source ?? new FileSource({ dir: configDir, logger })
  await source.start(ingest)
  logger.info('config source started', { source: source.name, dir: kube ? undefined : configDir, objects: store.all().length })
  kube?.elector.start()
  controller.watch()
  await controller.rebuild()

  return {
    adminPort: adminServer.port ?? opts.adminPort,
    controller,
    store,
    async stop() {
      // Readiness goes false first, so load balancers stop sending new clients here; then
      // listeners stop accepting, in-flight requests get the drain timeout to finish, and
      // whatever is still open (WebSockets included, closed with 1001) is cut.
      draining = true
      controller.stop()
      kube?.sink.stop()
      await kube?.elector.stop()
      await source.stop()
      if (opts.shutdownDelayMs) await Bun.sleep(opts.shutdownDelayMs)
      await dataplane.stop(opts.drainTimeoutMs ?? 15_000)
      await adminServer.stop(true)
    },
  }
}

interface Dataplane {
  apply(snapshot: Snapshot): Promise<{ readonly problems: readonly string[]; readonly failedPorts?: readonly number[] }>
  stop(drainMs: number): Promise<void>
}

function inThreadDataplane(logger: Logger, hostname: string, limits: Partial<HttpLimits> | undefined): Dataplane {
  // Each plane keeps its own endpoint registry: a registry prunes to the endpoints of the
  // plane's latest plan, so sharing one would let HTTP reloads forget L4 endpoint state.
  const http = new HttpDataplane({ logger, hostname, limits })
  const l4 = new L4Dataplane({ logger, hostname })
  return {
    async apply(snapshot) {
      const [h, l] = await Promise.all([http.apply(snapshot), l4.apply(snapshot)])
      return { problems: [...h.problems, ...l.problems], failedPorts: [...(h.failedPorts ?? []), ...(l.failedPorts ?? [])] }
    },
    async stop(drainMs) {
      await Promise.all([http.stop(false, drainMs), l4.stop()])
    },
  }
}

function workerDataplane(opts: PorticoOptions, hostname: string): Dataplane {
  const workerUrl = new URL('./worker.ts', import.meta.url).href
  const pool = new WorkerPool({ count: opts.workers ?? 1, workerUrl, hostname, logLevel: opts.logLevel ?? 'info', logger: opts.logger, limits: opts.limits })
  opts.logger.info('data plane running in worker threads', { workers: pool.size })
  return pool
}

/**
 * Kubernetes mode: the watcher replaces the folder as the source, and a second status sink
 * patches /status on the API server. Only the Lease holder writes; every replica serves.
 */
async function kubernetesMode(opts: PorticoOptions, k: KubernetesModeOptions, store: ResourceStore) {
  const { logger } = opts
  const client = await KubeClient.connect({ kubeconfig: k.kubeconfig })
  const elector = new LeaseElector({
    client,
    logger,
    namespace: k.leaderElectionNamespace ?? process.env.POD_NAMESPACE ?? 'default',
    name: k.leaderElectionId ?? 'portico-status-writer',
    identity: process.env.POD_NAME ?? `${machineName()}-${process.pid}`,
  })
  const [svcNs, svcName] = (k.gatewayAddressService ?? '').split('/')
  const sink = new KubernetesStatusSink({
    client,
    logger,
    controllerName: opts.controllerName,
    leadership: elector,
    gatewayAddresses: () =>
      (svcName ? addressesFromService(store.get(`Service/${svcNs}/${svcName}`)) : undefined) ??
      (process.env.POD_IP ? [{ type: 'IPAddress', value: process.env.POD_IP }] : undefined),
  })
  const source = new KubernetesSource({ client, logger, watchNamespace: k.watchNamespace })
  return { source, elector, sink }
}
