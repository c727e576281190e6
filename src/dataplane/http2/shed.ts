/**
 * The load shedder's answer on h2 (load-shedder.ts): the HTTP/1.1 front sheds the requests it
 * parses, but an h2 connection is a tunnel to the inner Bun.serve or the node:http2 server, so
 * those shed each new stream themselves. Same answer as on HTTP/1.1 (503 + Retry-After) minus
 * `Connection: close`, which h2 forbids; the connection stays open, as nginx's h2 does. A gRPC
 * call gets UNAVAILABLE (trailers-only), the status gRPC clients retry on.
 */
import http2, { type ServerHttp2Stream } from 'node:http2'
import { overloadCounters } from '../overload/metrics.ts'
import { GrpcStatus, isGrpcContentType, NO_DATE, trailersOnly } from './grpc-status.ts'

const BODY = 'overloaded\n'
const RETRY_AFTER_SECONDS = '1'

/** Bun.serve (inner server, h2 stream): the shed answer as a Response. */
export function shedResponse(contentType: string | null): Response {
  overloadCounters.shed++
  if (isGrpcContentType(contentType ?? undefined)) {
    return new Response(null, { status: 200, headers: { 'content-type': 'application/grpc', 'grpc-status': String(GrpcStatus.UNAVAILABLE), 'grpc-message': 'overloaded', 'retry-after': RETRY_AFTER_SECONDS } })
  }
  return new Response(BODY, { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8', 'retry-after': RETRY_AFTER_SECONDS } })
}

/** node:http2 server: answer the stream and end it. */
export function shedStream(stream: ServerHttp2Stream, grpc: boolean): void {
  overloadCounters.shed++
  if (grpc) {
    stream.respond(trailersOnly(GrpcStatus.UNAVAILABLE, 'overloaded', { 'retry-after': RETRY_AFTER_SECONDS }), { endStream: true, ...NO_DATE })
    return
  }
  stream.respond({ [http2.constants.HTTP2_HEADER_STATUS]: 503, 'content-type': 'text/plain; charset=utf-8', 'retry-after': RETRY_AFTER_SECONDS }, { endStream: false, ...NO_DATE })
  stream.end(BODY)
}
