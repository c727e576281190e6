/**
 * Snapshots on their way to data-plane workers, sent as changes. The main thread's Translator
 * hands every rebuild the same HttpRule and BackendPool objects for what did not change, and a
 * worker's compile() reuses compiled rules and pools by object identity. A plain
 * pack()/unpack() would make every object new on the worker's side, so every rebuild would
 * recompile everything (at 5,000 routes, tens of ms per worker for a one-route edit).
 *
 * So each such object gets a wire id in the main thread (stable while the object lives). An
 * encoder (one per worker) sends the whole object the first time and just its id while the
 * worker still holds it; the worker's decoder puts its own earlier object back in its place,
 * keeping identity across messages. Both sides then keep exactly the ids of the latest snapshot,
 * so they agree on what the worker holds without further messages. A decoder that meets an id
 * it does not hold (it cannot, unless the two disagree) throws WireResyncError, and the encoder
 * is reset to send everything again.
 */
import { pack, unpack } from 'msgpackr'
import type { BackendPool, HttpPort, HttpRule, Snapshot, VirtualHost } from '../ir/types.ts'

/** A rule or pool slot on the wire: the id of one the worker holds, or [id, the object]. */
type Wired<T> = number | [number, T]

interface WireSnapshot {
  readonly revision: number
  readonly http: readonly WireHttpPort[]
  readonly l4: Snapshot['l4']
  readonly pools: Readonly<Record<string, Wired<BackendPool>>>
}

type WireHttpPort = Omit<HttpPort, 'listeners'> & {
  readonly listeners: readonly (Omit<HttpPort['listeners'][number], 'virtualHosts'> & {
    readonly virtualHosts: readonly (Omit<VirtualHost, 'rules'> & { readonly rules: readonly Wired<HttpRule>[] })[]
  })[]
}

export class WireResyncError extends Error {}

/** Wire ids, shared by every encoder of the process: an object has one id whichever worker it goes to. */
const wireIds = new WeakMap<object, number>()
let nextWireId = 1

function wireIdOf(o: object): number {
  let id = wireIds.get(o)
  if (id === undefined) wireIds.set(o, (id = nextWireId++))
  return id
}

/** Main-thread side, one per worker. */
export class SnapshotEncoder {
  /** Ids the worker holds: those of the last snapshot sent. */
  #held = new Set<number>()

  encode(snapshot: Snapshot): Uint8Array {
    const held = this.#held
    const sent = new Set<number>()
    const wire = <T extends object>(o: T): Wired<T> => {
      const id = wireIdOf(o)
      sent.add(id)
      return held.has(id) ? id : [id, o]
    }
    const message: WireSnapshot = {
      revision: snapshot.revision,
      http: snapshot.http.map((port) => ({
        ...port,
        listeners: port.listeners.map((listener) => ({
          ...listener,
          virtualHosts: listener.virtualHosts.map((vhost) => ({ ...vhost, rules: vhost.rules.map(wire) })),
        })),
      })),
      l4: snapshot.l4,
      pools: Object.fromEntries(Object.entries(snapshot.pools).map(([key, pool]) => [key, wire(pool)])),
    }
    const bytes = pack(message)
    this.#held = sent
    return bytes
  }

  /** The worker lost track (or was replaced): send everything next time. */
  reset(): void {
    this.#held = new Set()
  }
}

/** Worker side. */
export class SnapshotDecoder {
  #held = new Map<number, object>()

  decode(bytes: Uint8Array): Snapshot {
    const message = unpack(bytes) as WireSnapshot
    const held = this.#held
    const kept = new Map<number, object>()
    const resolve = <T extends object>(slot: Wired<T>): T => {
      if (typeof slot === 'number') {
        const o = held.get(slot) ?? kept.get(slot)
        if (o === undefined) throw new WireResyncError(`snapshot ${message.revision} refers to object ${slot}, which this worker does not hold`)
        kept.set(slot, o)
        return o as T
      }
      const [id, o] = slot
      kept.set(id, o)
      return o
    }
    const snapshot: Snapshot = {
      revision: message.revision,
      http: message.http.map((port) => ({
        ...port,
        listeners: port.listeners.map((listener) => ({
          ...listener,
          virtualHosts: listener.virtualHosts.map((vhost) => ({ ...vhost, rules: vhost.rules.map(resolve) })),
        })),
      })),
      l4: message.l4,
      pools: Object.fromEntries(Object.entries(message.pools).map(([key, slot]) => [key, resolve(slot)])),
    }
    // Only once the whole message resolved: a failed decode leaves what the worker holds as it was.
    this.#held = kept
    return snapshot
  }
}
