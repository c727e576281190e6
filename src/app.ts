/**
 * Wires the pipeline: sources → store → translate → (validate) → data plane, status → sinks,
 * admin alongside. No logic of its own; each stage lives in its folder.
 */
import { resolve } from 'node:path'
import { createAdmin, createProbeAdmin, type AdminAuth } from './admin/index.ts'
import { isLoopbackAddress, tokenFromSecret } from './admin/auth.ts'
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
import { PolicyStatusLog } from './policy/status-log.ts'
import { hostname as machineName } from 'node:os'
import type { HttpLimits } from './dataplane/http/limits.ts'
import { ActiveProber } from './dataplane/upstream/health-prober.ts'
import { EndpointRegistry, HealthTable, type HealthChange } from './dataplane/upstream/registry.ts'
import { registryStats, type DataplaneStats } from './dataplane/upstream/stats.ts'
import { backendMetrics, endpointsView } from './admin/endpoints.ts'
import { installRateLimitEnv, type RateLimitEnv } from './policy/rate-limit/env.ts'
import { sharedCounters } from './policy/rate-limit/local-store.ts'
import { registerRateLimitMetrics } from './policy/rate-limit/metrics.ts'
import { configureRedis, redisSettingsFrom, redactRedisUrl } from './shared/redis.ts'
import { configureTelemetry, flushTelemetry, type TelemetryOptions } from './telemetry/observe.ts'
import { renderRequestMetrics, requestMetrics, routeStats, type MetricsExport } from './telemetry/request-metrics.ts'

export interface PorticoOptions {
  readonly configDir: string
  /** The full admin API (probes, metrics and the config views). */
  readonly adminPort: number
  /** Default 127.0.0.1. Any non-loopback address needs adminToken or adminTokenSecret. */
  readonly adminAddress?: string
  /** Bearer token the config views require (read from --admin-token-file). */
  readonly adminToken?: string
  /** "ns/name" of a Secret whose `token` key is the bearer token; config views answer 503 until it is loaded. */
  readonly adminTokenSecret?: string
  /** The probe/metrics socket (/healthz, /readyz, /metrics only); undefined = none. */
  readonly probePort?: number
  /** Default 0.0.0.0: the kubelet and Prometheus must reach it. */
  readonly probeAddress?: string
  readonly controllerName: string
  readonly bindAddress?: string
  readonly logger: Logger
  /** On stop: how long in-flight requests may take before connections are cut (default 15 s). */
  readonly drainTimeoutMs?: number
  /** On stop: how long to keep serving after /readyz turns 503, so load balancers notice (default 0). */
  readonly shutdownDelayMs?: number
  /** Data-plane worker threads sharing the listener ports; 1 (default) serves in this thread. */
  readonly workers?: number
  /**
   * Test hooks on the admin API (default: PORTICO_TEST_HOOKS=1 in the environment): POST
   * /debug/crash-worker?worker=N kills a worker thread the way a bug would. Never in production.
   */
  readonly testHooks?: boolean
  /** Log level handed to worker threads. */
  readonly logLevel?: string
  /** Kubernetes mode: watch the API server instead of the config folder, and write status back. */
  readonly kubernetes?: KubernetesModeOptions
  /** HTTP request limits and timeouts (dataplane/http/limits.ts); unset ones keep their defaults. */
  readonly limits?: Partial<HttpLimits>
  /** Redis for global rate limits (--redis-url); its password from redisPasswordFile when set. */
  readonly redisUrl?: string
  readonly redisPasswordFile?: string
  /** Request metrics, access log, tracing (telemetry/observe.ts); request metrics are on unless turned off. */
  readonly telemetry?: TelemetryOptions
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
  /** The port of the probe/metrics socket, when there is one. */
  readonly probePort?: number
  readonly controller: Controller
  readonly store: ResourceStore
  stop(): Promise<void>
}

export async function startPortico(opts: PorticoOptions): Promise<Portico> {
  const { logger } = opts
  const adminAddress = opts.adminAddress ?? '127.0.0.1'
  if (!isLoopbackAddress(adminAddress) && opts.adminToken === undefined && opts.adminTokenSecret === undefined)
    throw new Error(`admin address ${adminAddress} is not loopback: an admin token (file or Secret) is required`)
  if (opts.adminToken !== undefined && opts.adminToken.trim() === '') throw new Error('the admin token is empty')
  const store = new ResourceStore()
  const ingest = new StoreIngest(store)
  const status = new MemoryStatusSink()
  const metrics = new MetricsRegistry()
  const hostname = opts.bindAddress ?? '0.0.0.0'
  // Rate-limit counters for the whole process (every worker gets this buffer) and Redis.
  const rateLimit: RateLimitEnv = { counters: sharedCounters().buffer, ...(opts.redisUrl ? { redis: redisSettingsFrom(opts.redisUrl, opts.redisPasswordFile) } : {}) }
  installRateLimitEnv(rateLimit, logger)
  configureTelemetry(opts.telemetry)
  if (opts.redisUrl) logger.info('redis for global rate limits', { url: redactRedisUrl(opts.redisUrl), passwordFile: opts.redisPasswordFile !== undefined })
  // Active health checks run here, once per process, whatever the number of workers; their
  // transitions go to every data plane.
  let dataplane: Dataplane | undefined
  const prober = new ActiveProber((changes) => dataplane?.health(changes), logger)
  dataplane = (opts.workers ?? 1) > 1 ? workerDataplane(opts, hostname, () => prober.state(), rateLimit) : inThreadDataplane(logger, hostname, opts.limits)
  const plane = dataplane
  const consumer = {
    async apply(snapshot: Snapshot) {
      const result = await plane.apply(snapshot)
      prober.update(snapshot)
      return result
    },
  }
  const kube = opts.kubernetes ? await kubernetesMode(opts, opts.kubernetes, store) : undefined
  // One Translator for the life of the process: it remembers unchanged routes between rebuilds.
  const translator = new Translator({ controllerName: opts.controllerName })
  const controller = new Controller({
    store,
    translate: (view) => translator.translate(view),
    consumers: [consumer],
    // Rejected or conflicted policies are logged once per change (their status says the same).
    sinks: kube ? [status, new PolicyStatusLog(logger), kube.sink] : [status, new PolicyStatusLog(logger)],
    logger,
  })
  metrics.collect('portico_config_rebuilds_total', 'Rebuilds (translate, validate, apply) run so far', () => [[undefined, controller.rebuilds]], 'counter')
  metrics.collect('portico_config_revision', 'Store revision of the live snapshot', () => [[undefined, controller.live?.revision ?? 0]])
  metrics.collect('portico_config_rebuild_seconds', 'Duration of the latest rebuild (translate, validate, apply)', () => [[undefined, controller.lastRebuildMs / 1000]])
  metrics.collect('portico_config_load_problems', 'Manifests that failed to load', () => [[undefined, ingest.problems().length]])
  metrics.collect('portico_config_rejected', 'Problems that kept the latest snapshot from going live', () => [[undefined, controller.rejected.length]])
  backendMetrics(metrics, () => plane.stats(), () => prober.list(), () => controller.live)
  registerRateLimitMetrics(metrics, () => controller.live)
  if (plane.restarts !== undefined) metrics.collect('portico_worker_restarts_total', 'Data-plane worker threads that died and were started again with the live snapshot', () => [[undefined, plane.restarts ?? 0]], 'counter')
  controller.onLive(() => logger.info('first snapshot live: ready'))
  // Request metrics (per worker, merged at scrape) after the registry's series.
  const renderMetrics = () => metrics.render() + renderRequestMetrics(plane.requestMetrics())

  let draining = false
  const auth = adminAuth(opts, store)
  const ready = () => controller.live !== undefined && !draining
  const admin = createAdmin({
    ready,
    objects: () => store.all(),
    statusOf: (key) => status.get(key),
    problems: () => ingest.problems(),
    snapshot: () => controller.live,
    rejected: () => controller.rejected,
    metrics: renderMetrics,
    endpoints: () => endpointsView(controller.live, prober.list(), plane.stats()),
    routeStats: () => routeStats(plane.requestMetrics()),
    auth,
    crashWorker: (opts.testHooks ?? process.env.PORTICO_TEST_HOOKS === '1') && plane.crashWorker ? (index) => plane.crashWorker!(index) : undefined,
  })
  const adminServer = Bun.serve({ port: opts.adminPort, hostname: adminAddress, development: false, fetch: (req) => admin.handle(req) })
  logger.info('admin API listening', { address: adminAddress, port: adminServer.port, token: auth?.source ?? 'none' })
  let probeServer: ReturnType<typeof Bun.serve> | undefined
  if (opts.probePort !== undefined) {
    const probe = createProbeAdmin({ ready, metrics: renderMetrics })
    try {
      probeServer = Bun.serve({ port: opts.probePort, hostname: opts.probeAddress ?? '0.0.0.0', development: false, fetch: (req) => probe.handle(req) })
    } catch (err) {
      await adminServer.stop(true)
      throw err
    }
    logger.info('probe/metrics listening', { address: opts.probeAddress ?? '0.0.0.0', port: probeServer.port })
  }

  const configDir = resolve(opts.configDir)
  const source: Source = kube?.source ?? new FileSource({ dir: configDir, logger })
  await source.start(ingest)
  logger.info('config source started', { source: source.name, dir: kube ? undefined : configDir, objects: store.all().length })
  kube?.elector.start()
  controller.watch()
  await controller.rebuild()

  return {
    adminPort: adminServer.port ?? opts.adminPort,
    probePort: probeServer?.port,
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
      prober.stop()
      configureRedis(undefined)
      await plane.stop(opts.drainTimeoutMs ?? 15_000)
      await flushTelemetry()
      await Promise.all([adminServer.stop(true), probeServer?.stop(true)])
    },
  }
}

/** The admin token: a fixed one (from a file), or the `token` key of a Secret as the store holds it. */
function adminAuth(opts: PorticoOptions, store: ResourceStore): AdminAuth | undefined {
  if (opts.adminToken !== undefined) {
    const token = opts.adminToken
    return { token: () => token, source: 'file' }
  }
  if (opts.adminTokenSecret !== undefined) {
    const [ns, name] = opts.adminTokenSecret.split('/')
    return { token: () => tokenFromSecret(store.get(`Secret/${ns}/${name}`)), source: `Secret ${ns}/${name}` }
  }
  return undefined
}

interface Dataplane {
  apply(snapshot: Snapshot): Promise<{ readonly problems: readonly string[]; readonly failedPorts?: readonly number[] }>
  stop(drainMs: number): Promise<void>
  /** Active health transitions from the prober. */
  health(changes: readonly HealthChange[]): void
  /** Backend stats (passive ejections, circuits), summed over workers. */
  stats(): DataplaneStats
  /** Request metrics of each data plane (cumulative), merged at scrape. */
  requestMetrics(): MetricsExport[]
  /** Worker threads restarted after dying (workers only). */
  readonly restarts?: number
  /** Test hook: crash worker `index` (workers only). */
  crashWorker?(index: number): boolean
}

function inThreadDataplane(logger: Logger, hostname: string, limits: Partial<HttpLimits> | undefined): Dataplane {
  // Each plane keeps its own endpoint registry: a registry prunes to the endpoints of the
  // plane's latest plan, so sharing one would let HTTP reloads forget L4 endpoint state.
  const health = new HealthTable()
  const registries = [new EndpointRegistry({}, health), new EndpointRegistry({}, health)]
  const http = new HttpDataplane({ logger, hostname, limits, registry: registries[0] })
  const l4 = new L4Dataplane({ logger, hostname, registry: registries[1] })
  return {
    health: (changes) => health.apply(changes),
    stats: () => registryStats(registries),
    requestMetrics: () => [requestMetrics.export()],
    async apply(snapshot) {
      const [h, l] = await Promise.all([http.apply(snapshot), l4.apply(snapshot)])
      return { problems: [...h.problems, ...l.problems], failedPorts: [...(h.failedPorts ?? []), ...(l.failedPorts ?? [])] }
    },
    async stop(drainMs) {
      await Promise.all([http.stop(false, drainMs), l4.stop()])
      for (const registry of registries) registry.stop()
    },
  }
}

function workerDataplane(opts: PorticoOptions, hostname: string, health: () => readonly HealthChange[], rateLimit: RateLimitEnv): Dataplane {
  const workerUrl = new URL('./worker.ts', import.meta.url).href
  const pool = new WorkerPool({ count: opts.workers ?? 1, workerUrl, hostname, logLevel: opts.logLevel ?? 'info', logger: opts.logger, limits: opts.limits, health, rateLimit, telemetry: opts.telemetry })
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
