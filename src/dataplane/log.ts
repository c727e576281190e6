/**
 * The logger the data plane writes to: the one interface from telemetry/, re-exported so data
 * plane modules depend on a single nearby name. The real logger is passed in; tests pass
 * `silentLogger` or a recording one.
 */
export type { Logger, LogFields } from '../telemetry/logger.ts'
export { silentLogger } from '../telemetry/logger.ts'
