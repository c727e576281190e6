/**
 * Strings that betray a private key if they appear in a response or a log: the whole PEM, its
 * base64, the private scalar in the usual encodings, and each line of the PEM body that holds
 * private bytes. (A PKCS#8 EC or RSA key also carries the public key, which the certificate
 * holds too: lines made of public bytes only are left out, or a certificate would count as a leak.)
 */
import { createPrivateKey, X509Certificate } from 'node:crypto'

export function privateKeyNeedles(keyPem: string, certPem: string): [string, string][] {
  const certDer = new X509Certificate(certPem).raw
  const jwk = createPrivateKey(keyPem).export({ format: 'jwk' }) as { d?: string }
  const needles: [string, string][] = [
    ['private key PEM', keyPem.trim()],
    ['private key PEM (base64)', Buffer.from(keyPem).toString('base64').slice(0, 48)],
    ['PRIVATE KEY marker', 'PRIVATE KEY'],
  ]
  if (jwk.d) {
    const d = Buffer.from(jwk.d, 'base64url')
    needles.push(['private scalar (base64url)', jwk.d], ['private scalar (base64)', d.toString('base64')], ['private scalar (hex)', d.toString('hex')])
  }
  keyPem
    .split('\n')
    .filter((l) => l.length >= 16 && !l.startsWith('-----'))
    .forEach((line, i) => {
      if (!certDer.includes(Buffer.from(line, 'base64'))) needles.push([`private key PEM line ${i}`, line])
    })
  return needles
}
