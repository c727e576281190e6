/** BackendTrafficPolicy `requestBuffer.limit` (Envoy Gateway's field) as the `requestBuffer` feature. */
import { object, quantity, type Schema } from '../schema.ts'
import type { Feature } from '../translators.ts'
import { quantityValue } from '../compression/translate.ts'
import './spec.ts'

export const REQUEST_BUFFER_FIELDS: Record<string, Schema> = {
  requestBuffer: object(
    { limit: quantity('Largest request body buffered before the backend is called ("10Mi", "500Ki"); larger bodies get 413.') },
    { required: ['limit'], description: 'Receive each request body whole before connecting to the backend (slow clients never hold backend connections).' },
  ),
}

/** The feature, or undefined when the spec has no requestBuffer. */
export function requestBufferFeature(spec: Record<string, any>): Feature | string | undefined {
  const limit = spec.requestBuffer?.limit
  if (limit === undefined || limit === null) return undefined
  const bytes = quantityValue(limit)
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return `requestBuffer.limit ${JSON.stringify(limit)} must be a positive size`
  return { scope: 'request', name: 'requestBuffer', spec: { limitBytes: bytes } }
}
