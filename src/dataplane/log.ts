/**
 * The logger the data plane writes to. Deliberately minimal: the real logger lives in
 * telemetry/ and is passed in; tests pass `silentLogger` or a recording one.
 */
export type LogFields = Record<string, unknown>

export interface Logger {
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  debug(msg: string, fields?: LogFields): void
}

const noop = () => {}

export const silentLogger: Logger = { info: noop, warn: noop, error: noop, debug: noop }
