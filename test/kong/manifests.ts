/**
 * Kong-style manifests for the end-to-end tests, written as Kong's docs write them (KIC 3.x:
 * KongPlugin/KongConsumer at the top level, credential Secrets labelled konghq.com/credential),
 * with only the GatewayClass controllerName changed to Portico's.
 */
export const KEYS = { alex: 'hello_world', sam: 'sam-Secret-42', eve: 'eve-key-1' }
export const PASSWORDS = { alice: 'correct horse battery staple' }
export const JWT_SECRETS = { sam: 'sam-jwt-secret-0123456789abcdef' }

export function gateway(port: number, echoPort: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: kong
  annotations:
    konghq.com/gatewayclass-unmanaged: "true"
spec:
  controllerName: portico.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: kong
  namespace: default
spec:
  gatewayClassName: kong
  listeners:
    - name: proxy
      port: ${port}
      protocol: HTTP
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
  annotations:
    konghq.com/plugins: add-response-header
spec:
  ports:
    - name: http
      port: 80
      targetPort: ${echoPort}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-api
  namespace: default
  annotations:
    konghq.com/path: /v2
    konghq.com/host-header: api.internal
    konghq.com/connect-timeout: "5000"
spec:
  ports:
    - name: http
      port: 80
      targetPort: ${echoPort}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-api-1
  namespace: default
  labels:
    kubernetes.io/service-name: echo-api
addressType: IPv4
ports:
  - name: http
    port: ${echoPort}
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: { ready: true }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
  - name: http
    port: ${echoPort}
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: { ready: true }
`
}

/** An HTTPRoute on /<name> with konghq.com/plugins (and strip-path, as Kong's guides use). */
export function kongRoute(name: string, plugins: string, extra = '', annotations: Record<string, string> = {}, backend = 'echo'): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: default
  annotations:
    konghq.com/strip-path: "true"
${plugins ? `    konghq.com/plugins: ${plugins}\n` : ''}${Object.entries(annotations)
    .map(([k, v]) => `    ${k}: "${v}"\n`)
    .join('')}spec:
  parentRefs:
    - name: kong
  rules:
    - matches:
        - path:
            type: PathPrefix
            value: /${name}
      backendRefs:
        - name: ${backend}
          port: 80
${extra}`
}

export function plugin(name: string, pluginName: string, config: string, kind = 'KongPlugin', labels = ''): string {
  return `apiVersion: configuration.konghq.com/v1
kind: ${kind}
metadata:
  name: ${name}
${kind === 'KongPlugin' ? '  namespace: default\n' : ''}${labels}  annotations:
    kubernetes.io/ingress.class: kong
plugin: ${pluginName}
${config ? `config:\n${config}` : ''}`
}

export function credential(name: string, type: string, data: Record<string, string>): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: default
  labels:
    konghq.com/credential: ${type}
stringData:
${Object.entries(data)
  .map(([k, v]) => `  ${k}: "${v}"`)
  .join('\n')}
`
}

export function consumer(name: string, username: string | undefined, credentials: string[], opts: { customId?: string; plugins?: string } = {}): string {
  return `apiVersion: configuration.konghq.com/v1
kind: KongConsumer
metadata:
  name: ${name}
  namespace: default
  annotations:
    kubernetes.io/ingress.class: kong
${opts.plugins ? `    konghq.com/plugins: ${opts.plugins}\n` : ''}${username ? `username: ${username}\n` : ''}${opts.customId ? `custom_id: ${opts.customId}\n` : ''}credentials:
${credentials.map((c) => `  - ${c}`).join('\n')}
`
}

/** The consumers every test file shares: alex (admins, gold plan), sam, eve (duplicate of nobody), alice (basic-auth). */
export function consumers(): string {
  return [
    credential('alex-key', 'key-auth', { key: KEYS.alex }),
    credential('alex-acl', 'acl', { group: 'admins' }),
    consumer('alex', 'alex', ['alex-key', 'alex-acl'], { customId: 'alex-1', plugins: 'rate-limit-gold' }),
    credential('sam-key', 'key-auth', { key: KEYS.sam }),
    credential('sam-acl', 'acl', { group: 'viewers' }),
    credential('sam-jwt', 'jwt', { key: 'sam-issuer', algorithm: 'HS256', secret: JWT_SECRETS.sam }),
    consumer('sam', 'sam', ['sam-key', 'sam-acl', 'sam-jwt']),
    credential('alice-basic', 'basic-auth', { username: 'alice', password: PASSWORDS.alice }),
    consumer('alice', 'alice', ['alice-basic']),
  ].join('---\n')
}
