import { expect, test } from 'bun:test'
import { MemoryStatusSink } from '../../src/status/sink.ts'

test('lastTransitionTime is kept while a condition keeps its status, and moves when it flips', () => {
  let now = new Date('2026-01-01T00:00:00Z')
  const sink = new MemoryStatusSink(() => now)
  const status = (accepted: 'True' | 'False') => ({
    conditions: [{ type: 'Accepted', status: accepted, reason: accepted === 'True' ? 'Accepted' : 'Invalid', message: '' }],
    listeners: [{ name: 'http', attachedRoutes: 1, conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: '' }] }],
  })
  sink.publish({ 'Gateway/ns/g': status('True') })
  now = new Date('2026-01-01T00:01:00Z')
  sink.publish({ 'Gateway/ns/g': status('True') })
  let s = sink.get('Gateway/ns/g') as any
  expect(s.conditions[0].lastTransitionTime).toBe('2026-01-01T00:00:00Z')
  expect(s.listeners[0].conditions[0].lastTransitionTime).toBe('2026-01-01T00:00:00Z')
  now = new Date('2026-01-01T00:02:00Z')
  sink.publish({ 'Gateway/ns/g': status('False') })
  s = sink.get('Gateway/ns/g') as any
  expect(s.conditions[0].lastTransitionTime).toBe('2026-01-01T00:02:00Z')
  expect(s.listeners[0].conditions[0].lastTransitionTime).toBe('2026-01-01T00:00:00Z')
})

test('objects that are no longer published lose their status', () => {
  const sink = new MemoryStatusSink()
  sink.publish({ 'HTTPRoute/ns/a': { parents: [] } })
  sink.publish({})
  expect(sink.get('HTTPRoute/ns/a')).toBeUndefined()
})

test('an entry handed over again as the same object keeps its stamped form; a new object is stamped again', () => {
  let now = new Date('2026-01-01T00:00:00Z')
  const sink = new MemoryStatusSink(() => now)
  const route = (accepted: 'True' | 'False') => ({ parents: [{ parentRef: { name: 'g' }, conditions: [{ type: 'Accepted', status: accepted, reason: 'R', message: '' }] }] })
  const unchanged = route('True')
  const changing = route('True')
  sink.publish({ 'HTTPRoute/ns/a': unchanged, 'HTTPRoute/ns/b': changing })
  const stampedA = sink.get('HTTPRoute/ns/a')
  now = new Date('2026-01-01T00:05:00Z')
  sink.publish({ 'HTTPRoute/ns/a': unchanged, 'HTTPRoute/ns/b': route('False') })
  expect(sink.get('HTTPRoute/ns/a')).toBe(stampedA!)
  expect((sink.get('HTTPRoute/ns/b') as any).parents[0].conditions[0]).toMatchObject({ status: 'False', lastTransitionTime: '2026-01-01T00:05:00Z' })
  // a status that comes back as an equal but new object keeps its transition time (stamped by content)
  sink.publish({ 'HTTPRoute/ns/a': route('True'), 'HTTPRoute/ns/b': route('False') })
  expect((sink.get('HTTPRoute/ns/a') as any).parents[0].conditions[0].lastTransitionTime).toBe('2026-01-01T00:00:00Z')
})
