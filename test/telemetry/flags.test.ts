/** Telemetry flags and their environment variables (src/cli.ts). */
import { expect, test } from 'bun:test'
import { parseCli, UsageError } from '../../src/cli.ts'

test('defaults: access log and request metrics on, no tracing', () => {
  const t = parseCli([], {}).telemetry
  expect(t).toMatchObject({ accessLog: true, requestMetrics: true, accessLogQuery: false })
  expect(t.otlpEndpoint).toBeUndefined()
})

test('flags and env', () => {
  const t = parseCli(['--access-log', 'off', '--request-metrics=off', '--otlp-endpoint', 'http://collector:4318', '--trace-sample-ratio', '0.25', '--access-log-sample', '0.1'], {}).telemetry
  expect(t).toMatchObject({ accessLog: false, requestMetrics: false, otlpEndpoint: 'http://collector:4318', traceSampleRatio: 0.25, accessLogSample: 0.1 })
  const e = parseCli([], { ACCESS_LOG: 'off', OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example:4318', OTEL_TRACES_SAMPLER_ARG: '0.5' }).telemetry
  expect(e).toMatchObject({ accessLog: false, otlpEndpoint: 'https://otel.example:4318', traceSampleRatio: 0.5 })
})

test('bad values are usage errors', () => {
  expect(() => parseCli(['--access-log', 'maybe'], {})).toThrow(UsageError)
  expect(() => parseCli(['--trace-sample-ratio', '2'], {})).toThrow(UsageError)
  expect(() => parseCli(['--otlp-endpoint', 'collector:4318'], {})).toThrow(UsageError)
})
