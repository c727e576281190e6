/** What the front knows about a client connection and the inner Bun.serve cannot see (it sees loopback). */
export interface TlsPeer {
  /** The socket's peer, or the source of its PROXY protocol header. */
  clientIp: string
  /** HTTPS: SNI from the ClientHello (lower-case); undefined when the client sent none, and on plain HTTP. */
  serverName: string | undefined
  /** The connection is an h2 tunnel (h2c prior knowledge, or h2 by ALPN): its requests are new streams the front never saw. */
  h2?: boolean
}
