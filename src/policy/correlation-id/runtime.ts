/**
 * `correlationId` (spec.ts): a request that carries the header keeps its value; one that does not
 * gets a generated id upstream. With echoDownstream the response carries the same value (a
 * response hook: the rule takes the pipeline). Runs first, in the client phase, so errors of
 * later features are answered after the id exists (Kong: priority 100001).
 */
import type { PolicyRequest, PolicyRuntime } from '../runtime.ts'

const PROCESS_ID = crypto.randomUUID()
let counter = 0

export const correlationIdRuntime: PolicyRuntime<'correlationId'> = {
  name: 'correlationId',
  phase: 'client',
  order: 5,
  compile(ir) {
    const { header, generator, echoDownstream } = ir.spec
    const generate = (req: PolicyRequest) =>
      generator === 'uuid' ? crypto.randomUUID() : generator === 'uuid#counter' ? `${PROCESS_ID}#${++counter}` : `${req.peerIp}-${Date.now()}-${++counter}`
    const ids = echoDownstream ? new WeakMap<PolicyRequest, string>() : undefined
    return {
      headOnly: !echoDownstream,
      onRequest(req) {
        let id = req.header(header)
        if (id === null || id === '') {
          id = generate(req)
          req.setUpstreamHeader(header, id)
        }
        ids?.set(req, id)
        return undefined
      },
      ...(ids
        ? {
            onResponseHead(res, req) {
              const id = ids.get(req)
              if (id !== undefined) res.headers.set(header, id)
            },
          }
        : {}),
    }
  },
}
