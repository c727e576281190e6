/** Pooled HTTP/1.1 upstream client on Bun.connect (see agent.ts). */
export { Http1Agent, EndpointPool, type Http1Endpoint, type Http1AgentOptions, type Http1RequestOptions } from './agent.ts'
export type { Http1Request, Http1Response } from './connection.ts'
export { UpstreamError, type UpstreamFailure } from './errors.ts'
