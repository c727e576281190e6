import type { RequestFilter } from './types.ts'
import type { RuntimePool } from '../../upstream/pool.ts'
import type { Logger } from '../../log.ts'
import type { RequestState } from '../context.ts'

/**
 * RequestMirror: records the target; the proxy fires the copies once the final upstream request
 * (after every filter) is known. A pool missing from the snapshot is skipped (the translator
 * reports it); `percent` is decided per request.
 */
export function requestMirror(pool: RuntimePool | undefined, percent: number): RequestFilter {
  return (state) => {
    if (!pool || pool.members.length === 0) return undefined
    if (percent < 100 && Math.random() * 100 >= percent) return undefined
    ;(state.mirrors ??= []).push({ pool, percent })
    return undefined
  }
}

/**
 * Fire-and-forget copies. Never awaited and never allowed to throw into the main request:
 * a slow or dead mirror must not delay or break it. Bodies: bodiless requests and bodies the
 * proxy buffered anyway (known length ≤ 64 KiB) are mirrored; a streamed upload is not
 * mirrored at all, because teeing it would let a slow mirror apply backpressure to the client.
 */
export function fireMirrors(state: RequestState, headers: Headers, body: ArrayBuffer | null, logger: Logger): void {
  for (const mirror of state.mirrors!) {
    const member = mirror.pool.pick({ clientIp: state.clientIp, headers: state.headers, now: Date.now() })
    if (!member) continue
    fetch(member.origin + state.path + state.query, {
      method: state.method,
      headers,
      body,
      decompress: false,
      redirect: 'manual',
    })
      .then((res) => res.body?.cancel())
      .catch((err: unknown) => logger.debug('mirror request failed', { pool: mirror.pool.key, error: String(err) }))
  }
}
