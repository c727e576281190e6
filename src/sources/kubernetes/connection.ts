/**
 * How Portico reaches the API server. @kubernetes/client-node loads the kubeconfig (or the
 * in-cluster service account) and runs its authenticators (token files, exec plugins), but
 * requests go out through Bun's own fetch with `tls: { ca, cert, key }`: under Bun the client's
 * undici Agent silently drops those options, so HTTPS to a cluster CA would fail unless the user
 * set NODE_EXTRA_CA_CERTS, and client certificates would not work at all.
 */
import type { KubeConfig } from '@kubernetes/client-node'

export interface KubeConnectionOptions {
  /** A loaded KubeConfig, or a path to a kubeconfig file. Omitted: KUBECONFIG, ~/.kube/config, then in-cluster. */
  readonly kubeconfig?: KubeConfig | string
  /** Use the pod's service account (KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount). */
  readonly inCluster?: boolean
  /** Kubeconfig context to use instead of current-context. */
  readonly context?: string
}

/** Per-request connection settings: where, which TLS material, which headers. */
export interface KubeTransport {
  readonly server: string
  /** Called per request so rotating service-account tokens and exec credentials stay fresh. */
  prepare(): Promise<{ headers: Record<string, string>; tls?: BunFetchRequestInitTLS }>
}

export async function loadKubeConfig(opts: KubeConnectionOptions = {}): Promise<KubeConfig> {
  if (opts.kubeconfig !== undefined && typeof opts.kubeconfig !== 'string') return opts.kubeconfig
  // loaded lazily: the package is large and file mode never needs it
  const { KubeConfig } = await import('@kubernetes/client-node')
  const kc = new KubeConfig()
  if (typeof opts.kubeconfig === 'string') kc.loadFromFile(opts.kubeconfig)
  else if (opts.inCluster) kc.loadFromCluster()
  else kc.loadFromDefault()
  if (opts.context) kc.setCurrentContext(opts.context)
  if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster')
  return kc
}

export function transportFromKubeConfig(kc: KubeConfig): KubeTransport {
  const cluster = kc.getCurrentCluster()
  if (!cluster) throw new Error('kubeconfig has no current cluster')
  const server = cluster.server.replace(/\/+$/, '')
  return {
    server,
    async prepare() {
      // applyToHTTPSOptions reads caFile/certFile/keyFile (or *-data) and runs the user's authenticator
      const o: Record<string, any> = {}
      await kc.applyToHTTPSOptions(o as any)
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries((o.headers ?? {}) as Record<string, unknown>)) if (v !== undefined) headers[k] = String(v)
      if (typeof o.auth === 'string' && !headers.Authorization) headers.Authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`
      if (!server.startsWith('https:')) return { headers }
      const tls: BunFetchRequestInitTLS = {}
      if (o.ca) tls.ca = pem(o.ca)
      if (o.cert) tls.cert = pem(o.cert)
      if (o.key) tls.key = pem(o.key)
      if (o.rejectUnauthorized === false) tls.rejectUnauthorized = false
      if (o.servername) tls.serverName = o.servername
      return { headers, tls }
    },
  }
}

const pem = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v))
