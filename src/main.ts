#!/usr/bin/env bun
/** Entry point: read flags and environment, start Portico, stop cleanly on SIGTERM/SIGINT. */
import { parseCli, UsageError, USAGE } from './cli.ts'
import { startPortico } from './app.ts'
import { createLogger } from './telemetry/logger.ts'

let opts
try {
  opts = parseCli(process.argv.slice(2), process.env)
} catch (err) {
  if (!(err instanceof UsageError)) throw err
  process.stderr.write(`portico: ${err.message}\n`)
  process.exit(2)
}
if (opts.help) {
  process.stdout.write(USAGE + '\n')
  process.exit(0)
}

const logger = createLogger(opts.logLevel)
const kubernetes = opts.kubernetes
  ? { kubeconfig: opts.kubeconfig, watchNamespace: opts.watchNamespace, leaderElectionNamespace: opts.leaderElectionNamespace, leaderElectionId: opts.leaderElectionId, gatewayAddressService: opts.gatewayAddressService }
  : undefined
const portico = await startPortico({ ...opts, kubernetes, logger, drainTimeoutMs: opts.drainTimeoutSeconds * 1000, shutdownDelayMs: opts.shutdownDelaySeconds * 1000, logLevel: opts.logLevel }).catch((err: Error) => {
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
