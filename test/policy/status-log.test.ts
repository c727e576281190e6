import { expect, test } from 'bun:test'
import { PolicyStatusLog } from '../../src/policy/status-log.ts'
import { recordingLogger } from '../kubernetes/helpers.ts'

const status = (reason: string, ok = false) => ({
  'ClientTrafficPolicy/default/p': {
    ancestors: [{ ancestorRef: { kind: 'Gateway', namespace: 'default', name: 'gw' }, conditions: [{ type: 'Accepted', status: ok ? 'True' : 'False', reason, message: `because ${reason}` }] }],
  },
  'HTTPRoute/default/r': { parents: [] },
})

test('a policy that is not accepted is logged once per change, other kinds never', () => {
  const logger = recordingLogger()
  const log = new PolicyStatusLog(logger)
  log.publish(status('Invalid'))
  log.publish(status('Invalid'))
  expect(logger.lines).toEqual([
    { level: 'warn', msg: 'policy not accepted', fields: { policy: 'ClientTrafficPolicy/default/p', ancestor: 'Gateway/default/gw', reason: 'Invalid', message: 'because Invalid' } },
  ])
  log.publish(status('Conflicted'))
  expect(logger.lines).toHaveLength(2)
  log.publish(status('Accepted', true))
  expect(logger.lines).toHaveLength(2)
})
