/**
 * A throwaway PKI for the stand-in API server: a CA, a server certificate for 127.0.0.1 and
 * localhost, and a client certificate (CN = user, O = group) the server trusts, as kubeadm
 * issues them. Made with the openssl CLI because Bun has no X.509 issuing API.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestPki {
  readonly dir: string
  readonly caCert: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
  /** Paths of the same PEMs, for tools that want files (kubectl, in-cluster layout). */
  readonly files: { caCert: string; clientCert: string; clientKey: string }
}

function openssl(args: string[], cwd: string): void {
  const run = Bun.spawnSync(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe' })
  if (run.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr.toString()}`)
}

export function hasOpenssl(): boolean {
  return Bun.which('openssl') !== null
}

export function generatePki(user = 'portico-test', group = 'system:masters'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'portico-pki-'))
  const ecKey = (name: string) => openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name], dir)
  ecKey('ca.key')
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', '/CN=portico-test-ca', '-out', 'ca.crt'], dir)
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n')
  ecKey('server.key')
  openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=kube-apiserver', '-out', 'server.csr'], dir)
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256', '-extfile', 'server.ext', '-out', 'server.crt'], dir)
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
  ecKey('client.key')
  openssl(['req', '-new', '-key', 'client.key', '-subj', `/O=${group}/CN=${user}`, '-out', 'client.csr'], dir)
  openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256', '-extfile', 'client.ext', '-out', 'client.crt'], dir)
  const read = (f: string) => readFileSync(join(dir, f), 'utf8')
  return {
    dir,
    caCert: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    files: { caCert: join(dir, 'ca.crt'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') },
  }
}
