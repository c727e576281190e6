/**
 * gRPC status codes and the answers the gateway makes itself. A gRPC client reads the outcome of
 * a call from `grpc-status`, never from the HTTP status, so every error the gateway makes is an
 * HTTP 200 "Trailers-Only" response (grpc-status in the only HEADERS frame), as gRPC's HTTP/2
 * protocol spec (PROTOCOL-HTTP2.md) describes, and an HTTP status a policy answers with maps as
 * gRPC's http-grpc-status-mapping.md says (plus 403 → PERMISSION_DENIED, 400 → INVALID_ARGUMENT,
 * which is what the policies mean by them).
 */
import http2, { type OutgoingHttpHeaders } from 'node:http2'

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const

/** The gRPC status for an HTTP status the gateway (a policy, a direct response) answered with. */
export function grpcStatusForHttp(status: number): number {
  if (status >= 200 && status < 300) return GrpcStatus.UNKNOWN
  switch (status) {
    case 400:
      return GrpcStatus.INVALID_ARGUMENT
    case 401:
      return GrpcStatus.UNAUTHENTICATED
    case 403:
      return GrpcStatus.PERMISSION_DENIED
    case 404:
      return GrpcStatus.UNIMPLEMENTED
    case 408:
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED
    case 413:
    case 429:
      return GrpcStatus.RESOURCE_EXHAUSTED
    case 502:
    case 503:
      return GrpcStatus.UNAVAILABLE
    default:
      return status >= 500 ? GrpcStatus.INTERNAL : GrpcStatus.UNKNOWN
  }
}

/** A gRPC request: content-type application/grpc, application/grpc+proto, application/grpc-web is not (its own framing). */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false
  if (!contentType.startsWith('application/grpc')) return false
  const next = contentType.charCodeAt(16)
  // "application/grpc", "application/grpc+proto", "application/grpc;..." but not "application/grpc-web"
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md): printable ASCII except '%' stays as is. */
export function encodeGrpcMessage(message: string): string {
  let out = ''
  for (const byte of new TextEncoder().encode(message)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** The single HEADERS frame of a Trailers-Only error answer. */
export function trailersOnly(code: number, message: string, extra?: OutgoingHttpHeaders): OutgoingHttpHeaders {
  return literal({ ...extra, ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) })
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }

/**
 * grpc-timeout ("100m", "5S": at most 8 digits and a unit) in milliseconds; undefined when
 * absent or malformed (a malformed one is ignored, as gRPC servers do, rather than failing the call).
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined
  const m = /^(\d{1,8})([HMSmun])$/.exec(value)
  if (!m) return undefined
  return Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]!
}

/** The remaining budget as a grpc-timeout value for the backend (whole milliseconds, at least 1). */
export function formatGrpcTimeout(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}m`
}

/**
 * Header fields as literals that never enter the HPACK dynamic table. Measured on Bun 1.4.5:
 * with concurrent streams its encoder refers to dynamic-table entries nginx's decoder does not
 * have ("upstream sent invalid http2 table index: 64", 44 % of calls failed with nginx grpc_pass
 * in front of the gateway); literal fields cost a few bytes per response and decode everywhere.
 */
export function literal<T extends OutgoingHttpHeaders>(headers: T): T {
  const names: string[] = []
  for (const name in headers) if (name.charCodeAt(0) !== 58 /* : */) names.push(name)
  ;(headers as Record<symbol, unknown>)[http2.sensitiveHeaders] = names
  return headers
}

/** Response options: Bun's node:http2 adds a Date field unless told not to (not needed for gRPC, and it churns the table). */
export const NO_DATE = { sendDate: false } as const
