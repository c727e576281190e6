/** What every client connection of one HTTP front shares (http-front.ts builds it). */
import type { ActiveSnapshot } from '../../snapshot.ts'
import type { EndpointRegistry } from '../../upstream/registry.ts'
import type { Logger } from '../../log.ts'
import type { HttpLimits } from '../limits.ts'
import type { ResponseHeaderEdits } from '../../../policy/kind.ts'
import type { TlsPeer } from '../tls/peer.ts'
import type { LinkPools } from './links.ts'
import type { LoadShedder } from '../../overload/load-shedder.ts'
import type { ListenerGate } from '../../overload/connection-gate.ts'

export interface FrontContext {
  /** Gateway listener port from the IR (the plan's key for this port). */
  readonly irPort: number
  /** 'https' when the front terminates TLS (forwarding headers, access log). */
  readonly scheme: 'http' | 'https'
  readonly active: ActiveSnapshot
  readonly registry: EndpointRegistry
  readonly links: LinkPools
  readonly limits: HttpLimits
  /** ClientTrafficPolicy headers.lateResponseHeaders of the port (follows the plan): edits to every head the front sends. */
  lateResponseHeaders: ResponseHeaderEdits | undefined
  readonly logger: Logger
  /** Coarse clock (ms), advanced by the front's sweep: idle checks need no Date.now() per event. */
  readonly clock: { now: number }
  readonly connections: Set<{ sweep(now: number): void }>
  /** Inner links' local ports → the client behind them (the inner server sees only loopback). */
  readonly peers: Map<number, TlsPeer>
  /** Port of the inner Bun.serve that runs the full pipeline. */
  innerPort(): number
  /** Port of the h2 server (gRPC trailers) h2 connections go to; absent or undefined (no gRPC on the port): the inner server. */
  h2Port?(): number | undefined
  /** Stopping: finish what is in flight, keep no connection alive. */
  draining: boolean
  /** Exchanges in progress on this port (overload shedding). */
  inFlight: number
  /** The data plane's load shedder: while overloaded, new requests get 503 + Retry-After. */
  readonly shedder: LoadShedder
  /** Connection admission; a connection gives its slot back when its socket closes (http-front.ts). */
  readonly gate: ListenerGate
}
