/**
 * Command-line and environment parsing. Flags win over environment variables, which win
 * over defaults. Any unknown flag or bad value is a usage error: one line, exit code 2.
 */
import { readFileSync } from 'node:fs'
import { LOG_LEVELS, type LogLevel } from './telemetry/logger.ts'
import { LIMIT_FLAGS, parseLimitFlags, type HttpLimits } from './dataplane/http/limits.ts'
import { isBindAddress, isLoopbackAddress } from './admin/auth.ts'
import { redactRedisUrl, redisUrlProblem } from './shared/redis.ts'
import type { TelemetryOptions } from './telemetry/observe.ts'
import { version as packageVersion } from '../package.json'

export interface CliOptions {
  configDir: string
  /** The full admin API: probes, /metrics and the config views. */
  adminPort: number
  adminAddress: string
  /** File holding the admin bearer token (read by readAdminTokenFile before start). */
  adminTokenFile?: string
  /** "ns/name" of a Secret whose `token` key is the admin bearer token. */
  adminTokenSecret?: string
  /** The probe/metrics socket (/healthz /readyz /metrics); undefined = off. */
  probePort: number | undefined
  probeAddress: string
  controllerName: string
  logLevel: LogLevel
  /** Address the listeners bind to. */
  bindAddress: string
  /** Seconds in-flight requests get to finish on SIGTERM. */
  drainTimeoutSeconds: number
  /** Seconds to keep serving after readiness turns false on SIGTERM. */
  shutdownDelaySeconds: number
  /** Data-plane worker threads. */
  workers: number
  /** Kubernetes mode (watch the API server instead of --config-dir). */
  kubernetes: boolean
  kubeconfig?: string
  watchNamespace?: string
  leaderElectionNamespace?: string
  leaderElectionId?: string
  gatewayAddressService?: string
  /** Request limits and timeouts of the HTTP data plane (README "Limits and timeouts"). */
  limits: Partial<HttpLimits>
  /** Redis for global rate limits (redis:// or rediss://); never logged with its password. */
  redisUrl?: string
  /** File holding the Redis password (overrides one in the URL). */
  redisPasswordFile?: string
  /** Request metrics, access log, tracing (README "Observability"). */
  telemetry: TelemetryOptions
  help: boolean
}

export class UsageError extends Error {}

/**
 * `portico --version`: the package.json version plus the git revision. The container build bakes
 * the revision in (`bun build --define process.env.PORTICO_REVISION=...`, docker/Dockerfile);
 * run from a checkout it is asked of git, so a dev binary never claims a release's revision.
 */
export function versionLine(): string {
  return `portico ${packageVersion} (${process.env.PORTICO_REVISION || gitRevision() || 'unknown revision'})`
}

function gitRevision(): string | undefined {
  try {
    const git = Bun.spawnSync(['git', 'rev-parse', 'HEAD'], { cwd: import.meta.dir, stdout: 'pipe', stderr: 'ignore' })
    return git.exitCode === 0 ? git.stdout.toString().trim() : undefined
  } catch {
    return undefined // no git on PATH
  }
}

export const USAGE = `usage: portico [options]
  --config-dir DIR          folder of Gateway API manifests to serve and watch (env CONFIG_DIR; default routes/)
  --admin-port N            admin API port: /resources /config /problems, plus /healthz /readyz /metrics (env ADMIN_PORT; default 9901)
  --admin-address ADDR      admin API bind address (env ADMIN_ADDRESS; default 127.0.0.1); any non-loopback address needs a token
  --admin-token-file PATH   bearer token the config views require (env ADMIN_TOKEN_FILE)
  --admin-token-secret NS/NAME  same, from the Secret's "token" key (env ADMIN_TOKEN_SECRET)
  --probe-port N|off        probe/metrics port: /healthz /readyz /metrics only (env PROBE_PORT; default admin port + 1)
  --probe-address ADDR      probe/metrics bind address (env PROBE_ADDRESS; default 0.0.0.0)
  --controller-name NAME    GatewayClass controllerName to serve (env GATEWAY_CONTROLLER_NAME; default portico.dev/gateway-controller)
  --bind-address ADDR       address listeners bind to (env BIND_ADDRESS; default 0.0.0.0)
  --log-level LEVEL         debug|info|warn|error (env LOG_LEVEL; default info)
  --drain-timeout S         on SIGTERM, seconds in-flight requests get to finish (env DRAIN_TIMEOUT; default 15)
  --workers N               data-plane worker threads sharing the ports (env WORKERS; default: number of cores)
  --shutdown-delay S        on SIGTERM, seconds to keep serving after /readyz turns 503 (env SHUTDOWN_DELAY; default 0)
  --kubernetes              watch the Kubernetes API instead of --config-dir, write status back (env KUBERNETES_MODE=true)
  --kubeconfig PATH         kubeconfig to use (env KUBECONFIG; default ~/.kube/config, then in-cluster)
  --watch-namespace NS      watch namespaced kinds in NS only (env WATCH_NAMESPACE)
  --leader-election-namespace NS  namespace of the status-writer Lease (env POD_NAMESPACE; default default)
  --leader-election-id NAME name of the status-writer Lease (default portico-status-writer)
  --gateway-address-service NS/NAME  Service whose load-balancer addresses go into Gateway status
  --redis-url URL           Redis for global rate limits: redis://[:password@]host[:port][/db] or rediss:// (env REDIS_URL)
  --redis-password-file PATH  the Redis password, from a file (a mounted Secret) (env REDIS_PASSWORD_FILE)
${LIMIT_FLAGS.map((f) => `  ${`${f.flag} ${f.unit === 'bytes' ? 'SIZE' : f.unit === 'seconds' ? 'S' : 'N'}`.padEnd(25)} ${f.help} (env ${f.env})`).join('\n')}
  --access-log on|off       one JSON line per request / L4 connection / WebSocket session on stdout (env ACCESS_LOG; default on)
  --access-log-sample R     keep this share of access log lines, 0..1; 5xx always kept (env ACCESS_LOG_SAMPLE; default 1)
  --access-log-query on|off include query strings in the logged path (env ACCESS_LOG_QUERY; default off)
  --request-metrics on|off  per-route request counters and histograms in /metrics (env REQUEST_METRICS; default on)
  --otlp-endpoint URL       export a span per request over OTLP/HTTP JSON, e.g. http://collector:4318 (env OTEL_EXPORTER_OTLP_ENDPOINT)
  --trace-sample-ratio R    share of new traces sampled, 0..1; an incoming traceparent's flag wins (env OTEL_TRACES_SAMPLER_ARG; default 1)
  -h, --help                show this help
  --version                 print the version and the git revision it was built from, then exit`

const FLAGS: Record<string, keyof CliOptions> = {
  '--config-dir': 'configDir',
  '--admin-port': 'adminPort',
  '--admin-address': 'adminAddress',
  '--admin-token-file': 'adminTokenFile',
  '--admin-token-secret': 'adminTokenSecret',
  '--probe-port': 'probePort',
  '--probe-address': 'probeAddress',
  '--controller-name': 'controllerName',
  '--bind-address': 'bindAddress',
  '--log-level': 'logLevel',
  '--drain-timeout': 'drainTimeoutSeconds',
  '--shutdown-delay': 'shutdownDelaySeconds',
  '--workers': 'workers',
  '--kubeconfig': 'kubeconfig',
  '--watch-namespace': 'watchNamespace',
  '--leader-election-namespace': 'leaderElectionNamespace',
  '--leader-election-id': 'leaderElectionId',
  '--gateway-address-service': 'gatewayAddressService',
  '--redis-url': 'redisUrl',
  '--redis-password-file': 'redisPasswordFile',
}

/** Telemetry flags (values kept as text until checked). */
const TELEMETRY_FLAGS: Record<string, string> = {
  '--access-log': 'ACCESS_LOG',
  '--access-log-sample': 'ACCESS_LOG_SAMPLE',
  '--access-log-query': 'ACCESS_LOG_QUERY',
  '--request-metrics': 'REQUEST_METRICS',
  '--otlp-endpoint': 'OTEL_EXPORTER_OTLP_ENDPOINT',
  '--trace-sample-ratio': 'OTEL_TRACES_SAMPLER_ARG',
}

function telemetryOptions(values: Map<string, string>, env: Record<string, string | undefined>): TelemetryOptions {
  const get = (flag: string) => values.get(flag) ?? nonEmpty(env[TELEMETRY_FLAGS[flag]!])
  const onOff = (flag: string, fallback: boolean) => {
    const v = get(flag)
    if (v === undefined) return fallback
    if (v === 'on' || v === 'true' || v === 'stdout') return true
    if (v === 'off' || v === 'false') return false
    throw new UsageError(`${flag} must be on or off, got ${JSON.stringify(v)}`)
  }
  const ratio = (flag: string) => {
    const v = get(flag)
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`${flag} must be a number from 0 to 1, got ${JSON.stringify(v)}`)
    return n
  }
  const endpoint = get('--otlp-endpoint')
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/.test(endpoint)) throw new UsageError(`--otlp-endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}`)
  return {
    accessLog: onOff('--access-log', true),
    accessLogSample: ratio('--access-log-sample'),
    accessLogQuery: onOff('--access-log-query', false),
    requestMetrics: onOff('--request-metrics', true),
    ...(endpoint ? { otlpEndpoint: endpoint } : {}),
    traceSampleRatio: ratio('--trace-sample-ratio'),
    serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ?? 'portico',
  }
}

export function parseCli(argv: readonly string[], env: Record<string, string | undefined>): CliOptions {
  const raw: Partial<Record<keyof CliOptions, string>> = {
    configDir: env.CONFIG_DIR,
    adminPort: env.ADMIN_PORT,
    adminAddress: env.ADMIN_ADDRESS,
    adminTokenFile: env.ADMIN_TOKEN_FILE,
    adminTokenSecret: env.ADMIN_TOKEN_SECRET,
    probePort: env.PROBE_PORT,
    probeAddress: env.PROBE_ADDRESS,
    controllerName: env.GATEWAY_CONTROLLER_NAME,
    bindAddress: env.BIND_ADDRESS,
    logLevel: env.LOG_LEVEL,
    drainTimeoutSeconds: env.DRAIN_TIMEOUT,
    shutdownDelaySeconds: env.SHUTDOWN_DELAY,
    workers: env.WORKERS,
    kubeconfig: env.KUBECONFIG,
    watchNamespace: env.WATCH_NAMESPACE,
    leaderElectionNamespace: env.POD_NAMESPACE,
    redisUrl: env.REDIS_URL,
    redisPasswordFile: env.REDIS_PASSWORD_FILE,
  }
  let help = false
  let kubernetes = env.KUBERNETES_MODE === 'true'
  const rawLimits = new Map<string, string>()
  const rawTelemetry = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h' || arg === '--help') {
      help = true
      continue
    }
    if (arg === '--kubernetes') {
      kubernetes = true
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq > 0 ? arg.slice(0, eq) : arg
    const field = FLAGS[name]
    const isLimit = LIMIT_FLAGS.some((f) => f.flag === name)
    if (!field && !isLimit && TELEMETRY_FLAGS[name] !== undefined) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
      if (value === undefined || value === '') throw new UsageError(`${name} needs a value`)
      rawTelemetry.set(name, value)
      continue
    }
    if (!field && !isLimit) throw new UsageError(`unknown argument ${JSON.stringify(arg)} (see --help)`)
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined || value === '') throw new UsageError(`${name} needs a value`)
    if (field) raw[field] = value
    else rawLimits.set(name, value)
  }
  const adminPort = port(raw.adminPort, 9901, '--admin-port')
  const opts: CliOptions = {
    configDir: nonEmpty(raw.configDir) ?? 'routes/',
    adminPort,
    adminAddress: nonEmpty(raw.adminAddress) ?? '127.0.0.1',
    adminTokenFile: nonEmpty(raw.adminTokenFile),
    adminTokenSecret: nonEmpty(raw.adminTokenSecret),
    probePort: raw.probePort === 'off' ? undefined : port(raw.probePort, adminPort === 0 ? 0 : adminPort + 1, '--probe-port'),
    probeAddress: nonEmpty(raw.probeAddress) ?? '0.0.0.0',
    controllerName: nonEmpty(raw.controllerName) ?? 'portico.dev/gateway-controller',
    bindAddress: nonEmpty(raw.bindAddress) ?? '0.0.0.0',
    logLevel: 'info',
    drainTimeoutSeconds: seconds(raw.drainTimeoutSeconds, 15, '--drain-timeout'),
    shutdownDelaySeconds: seconds(raw.shutdownDelaySeconds, 0, '--shutdown-delay'),
    workers: count(raw.workers, navigator.hardwareConcurrency || 1, '--workers'),
    kubernetes,
    kubeconfig: nonEmpty(raw.kubeconfig),
    watchNamespace: nonEmpty(raw.watchNamespace),
    leaderElectionNamespace: nonEmpty(raw.leaderElectionNamespace),
    leaderElectionId: nonEmpty(raw.leaderElectionId),
    gatewayAddressService: nonEmpty(raw.gatewayAddressService),
    redisUrl: nonEmpty(raw.redisUrl),
    redisPasswordFile: nonEmpty(raw.redisPasswordFile),
    limits: {},
    telemetry: telemetryOptions(rawTelemetry, env),
    help,
  }
  try {
    opts.limits = parseLimitFlags(rawLimits, env)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const level = nonEmpty(raw.logLevel)
  if (level !== undefined) {
    if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join('|')}, got ${JSON.stringify(level)}`)
    opts.logLevel = level as LogLevel
  }
  if (opts.gatewayAddressService !== undefined && !/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(opts.gatewayAddressService))
    throw new UsageError(`--gateway-address-service must be namespace/name, got ${JSON.stringify(opts.gatewayAddressService)}`)
  if (!/^[a-z0-9.-]+\/[A-Za-z0-9/._-]+$/.test(opts.controllerName)) throw new UsageError(`--controller-name must look like domain/path, got ${JSON.stringify(opts.controllerName)}`)
  checkAdminFlags(opts)
  const redisProblem = opts.redisUrl === undefined ? undefined : redisUrlProblem(opts.redisUrl)
  // The URL may carry a password: a usage error shows it redacted.
  if (redisProblem) throw new UsageError(`--redis-url ${redactRedisUrl(opts.redisUrl!)} ${redisProblem}`)
  if (opts.redisPasswordFile !== undefined && opts.redisUrl === undefined) throw new UsageError('--redis-password-file needs --redis-url')
  return opts
}

/** The admin/probe split (README "Admin API"): valid addresses, distinct ports, a token for any wider bind. */
function checkAdminFlags(opts: CliOptions): void {
  for (const [flag, address] of [['--admin-address', opts.adminAddress], ['--probe-address', opts.probeAddress]] as const)
    if (!isBindAddress(address)) throw new UsageError(`${flag} must be an IPv4 or IPv6 address or localhost, got ${JSON.stringify(address)}`)
  if (opts.probePort !== undefined && opts.probePort > 65535) throw new UsageError(`--probe-port defaults to the admin port + 1, which is out of range for --admin-port ${opts.adminPort}: set --probe-port`)
  if (opts.probePort !== undefined && opts.probePort !== 0 && opts.probePort === opts.adminPort) throw new UsageError(`--probe-port must differ from --admin-port (${opts.adminPort}), or be off`)
  if (opts.adminTokenFile !== undefined && opts.adminTokenSecret !== undefined) throw new UsageError('set one of --admin-token-file and --admin-token-secret, not both')
  if (opts.adminTokenSecret !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(opts.adminTokenSecret))
    throw new UsageError(`--admin-token-secret must be namespace/name, got ${JSON.stringify(opts.adminTokenSecret)}`)
  if (!isLoopbackAddress(opts.adminAddress) && opts.adminTokenFile === undefined && opts.adminTokenSecret === undefined)
    throw new UsageError(
      `--admin-address ${opts.adminAddress} is not loopback: the config views would be open to the network; set --admin-token-file or --admin-token-secret (or keep the default 127.0.0.1 and use kubectl port-forward)`,
    )
}

/** The admin token from --admin-token-file: trimmed, non-empty; otherwise a usage error. */
export function readAdminTokenFile(path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new UsageError(`--admin-token-file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const token = text.trim()
  if (token === '') throw new UsageError(`--admin-token-file ${path} is empty`)
  if (/\s/.test(token)) throw new UsageError(`--admin-token-file ${path}: the token must be one word (no spaces or line breaks)`)
  return token
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}

function port(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!/^\d+$/.test(v) || n > 65535) throw new UsageError(`${name} must be a port number 0-65535, got ${JSON.stringify(v)}`)
  return n
}

function seconds(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!/^\d+(\.\d+)?$/.test(v) || n > 3600) throw new UsageError(`${name} must be a number of seconds 0-3600, got ${JSON.stringify(v)}`)
  return n
}

function count(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!/^\d+$/.test(v) || n < 1 || n > 256) throw new UsageError(`${name} must be an integer 1-256, got ${JSON.stringify(v)}`)
  return n
}
