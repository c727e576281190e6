#!/usr/bin/env bun
/** Entry point: read flags and environment, start Portico, stop cleanly on SIGTERM/SIGINT. */
import { parseCli, readAdminTokenFile, UsageError, USAGE, versionLine, type CliOptions } from './cli.ts'
import { createLogger } from './telemetry/logger.ts'

/** Bad flags, addresses or token files: one line on stderr, exit code 2, before anything starts. */
function usageCheck<T>(f: () => T): T {
  try {
    return f()
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`portico: ${err.message}\n`)
    process.exit(2)
  }
}

// Subcommands (status, routes, describe, validate: src/commands.ts) run and exit; anything else starts the gateway.
const first = process.argv[2]
if (first === '--version') {
  process.stdout.write(versionLine() + '\n')
  process.exit(0)
}
if (first === 'status' || first === 'routes' || first === 'describe' || first === 'validate') {
  const { runCommand } = await import('./commands.ts')
  process.exit(await runCommand(process.argv.slice(2)))
}

const opts: CliOptions = usageCheck(() => parseCli(process.argv.slice(2), process.env))
if (opts.help) {
  process.stdout.write(USAGE + '\n')
  process.exit(0)
}
const adminToken = opts.adminTokenFile === undefined ? undefined : usageCheck(() => readAdminTokenFile(opts.adminTokenFile!))

// loaded once the flags are known good, so a usage error answers at once and loads nothing else
const { startPortico } = await import('./app.ts')
const logger = createLogger(opts.logLevel)
const kubernetes = opts.kubernetes
  ? { kubeconfig: opts.kubeconfig, watchNamespace: opts.watchNamespace, leaderElectionNamespace: opts.leaderElectionNamespace, leaderElectionId: opts.leaderElectionId, gatewayAddressService: opts.gatewayAddressService }
  : undefined
const portico = await startPortico({ ...opts, adminToken, kubernetes, logger, drainTimeoutMs: opts.drainTimeoutSeconds * 1000, shutdownDelayMs: opts.shutdownDelaySeconds * 1000, logLevel: opts.logLevel }).catch((err: Error) => {
  logger.error('startup failed', { err: err.message })
  process.exit(1)
})

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1) // second signal: give up on graceful
    stopping = true
    logger.info('shutting down', { signal })
    portico.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
}
