/**
 * Consumers (Kong's model, read from KongConsumer objects by src/kong): what an authentication
 * runtime does once a credential matched, and the error answers Kong's clients expect.
 *
 * The upstream learns who called through X-Consumer-* headers, which the gateway sets or clears
 * on every authenticated request, so a client can never supply them itself (Kong's
 * `set_consumer` in its auth plugins does the same).
 */
import type { LocalReply, PolicyRequest } from '../runtime.ts'
import { setConsumer, type ConsumerIdentity } from '../security/request.ts'

export type { ConsumerIdentity }

export const CONSUMER_HEADERS = ['x-consumer-id', 'x-consumer-custom-id', 'x-consumer-username', 'x-credential-identifier', 'x-anonymous-consumer'] as const

/** Records the consumer for later features and sets (or clears) its upstream headers. */
export function authenticateConsumer(req: PolicyRequest, consumer: ConsumerIdentity): void {
  setConsumer(req, consumer)
  const put = (name: string, value: string | undefined) => (value === undefined || value === '' ? req.removeUpstreamHeader(name) : req.setUpstreamHeader(name, value))
  put('x-consumer-id', consumer.id)
  put('x-consumer-custom-id', consumer.customId)
  put('x-consumer-username', consumer.username)
  put('x-credential-identifier', consumer.credentialId)
  put('x-anonymous-consumer', consumer.anonymous ? 'true' : undefined)
}

/** Which answers a runtime gives when it refuses a request: Portico's plain text or Kong's JSON. */
export type ErrorStyle = 'portico' | 'kong'

/**
 * Kong's error answer (kong.response.error): `{"message": ..., "request_id": ...}` as JSON. The
 * request id is the one going upstream when there is one, so logs on both sides line up.
 */
export function kongError(req: PolicyRequest, status: number, message: string, headers: readonly (readonly [string, string])[] = []): LocalReply {
  const requestId = req.requestId ?? randomId()
  return {
    status,
    headers: [...headers, ['content-type', 'application/json; charset=utf-8']],
    body: `${JSON.stringify({ message, request_id: requestId })}\n`,
  }
}

function randomId(): string {
  return crypto.randomUUID().replace(/-/g, '')
}
