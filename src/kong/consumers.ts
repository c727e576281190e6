/**
 * KongConsumer objects and their credential Secrets → consumers with identities and credentials.
 *
 *  - A consumer's id is go-kong's FillID (uuid.ts) of its username (custom_id when it has none),
 *    so upstreams see the X-Consumer-ID they saw behind Kong.
 *  - `credentials` name Secrets in the consumer's namespace, labelled `konghq.com/credential:
 *    <type>` (KIC 3.x; the older `kongCredType` data key is read too): key-auth `key`,
 *    basic-auth `username`/`password`, acl `group`, jwt `key`/`algorithm`/`secret`/`rsa_public_key`.
 *  - Credential ids are deterministic too (a UUIDv5 of the Secret's namespace/name), so
 *    X-Credential-Identifier is stable across restarts and replicas.
 *  - Two consumers presenting the same key-auth key or basic-auth username: both are rejected
 *    (their credentials are not accepted anywhere), and their status says with whom they clash.
 */
import { createHash } from 'node:crypto'
import type { K8sObject } from '../store/kinds.ts'
import { objectKey } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import type { ConsumerIdentity } from '../policy/consumer/identity.ts'
import { findByKey } from '../policy/translate-context.ts'
import { secretValue } from '../translate/tls.ts'
import { list, str, type Json } from '../translate/util.ts'
import { CREDENTIAL_LABEL, PLUGINS_ANNOTATION } from './kinds.ts'
import { kongEntityId } from './uuid.ts'

export interface KeyCredential {
  readonly sha256: string
  readonly consumer: ConsumerIdentity
}

export interface BasicCredential {
  readonly username: string
  /** {SHA} htpasswd form of the password: the secret itself never enters the IR. */
  readonly hash: string
  readonly consumer: ConsumerIdentity
}

export interface JwtSecret {
  readonly key: string
  readonly algorithm: string
  readonly secret?: string
  readonly publicKeyPem?: string
  readonly consumer: ConsumerIdentity
}

export interface Consumer {
  readonly object: K8sObject
  readonly namespace: string
  readonly name: string
  /** Without credentials (what per-consumer features and `anonymous` refer to). */
  readonly identity: ConsumerIdentity
  /** Plugin references in its konghq.com/plugins annotation. */
  readonly plugins: readonly string[]
  readonly keys: readonly KeyCredential[]
  readonly basics: readonly BasicCredential[]
  readonly jwts: readonly JwtSecret[]
  /** Credential types Portico does not read yet (jwt, oauth2, hmac-auth...): named in status. */
  readonly unread: readonly string[]
  /** Why it is rejected (a credential another consumer uses too, no username nor custom_id). */
  problems: string[]
  /** What is wrong without rejecting it (a credential Secret missing or malformed: that credential is skipped). */
  readonly warnings: readonly string[]
}

const CREDENTIAL_TYPES = ['key-auth', 'basic-auth', 'acl', 'jwt', 'hmac-auth', 'oauth2', 'mtls-auth'] as const

export function pluginRefs(annotations: Record<string, string> | undefined): string[] {
  const raw = annotations?.[PLUGINS_ANNOTATION]
  if (typeof raw !== 'string') return []
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

export function readConsumers(view: ResourceView): Consumer[] {
  const out: Consumer[] = []
  for (const o of view.kongConsumers) {
    const raw = o as unknown as Json
    const namespace = o.metadata.namespace ?? 'default'
    const username = str(raw.username)
    const customId = str(raw.custom_id)
    const problems: string[] = []
    const warnings: string[] = []
    if (!username && !customId) problems.push('username or custom_id is required')
    const id = kongEntityId('consumers', username ?? customId ?? `${namespace}/${o.metadata.name}`)
    const groups: string[] = []
    const pending: { type: string; secret: K8sObject; credentialId: string }[] = []
    const unread: string[] = []
    for (const c of list(raw.credentials)) {
      const secretName = str(c)
      if (!secretName) continue
      const secret = findByKey(view.secrets, objectKey('Secret', namespace, secretName))
      if (!secret) {
        warnings.push(`credential Secret ${namespace}/${secretName} not found`)
        continue
      }
      const type = secret.metadata.labels?.[CREDENTIAL_LABEL] ?? secretValue(secret, 'kongCredType')
      if (!type || !(CREDENTIAL_TYPES as readonly string[]).includes(type)) {
        warnings.push(`Secret ${namespace}/${secretName} has no valid ${CREDENTIAL_LABEL} label`)
        continue
      }
      const credentialId = kongEntityId('credentials', `${namespace}/${secretName}`)
      if (type === 'acl') {
        const g = secretValue(secret, 'group')
        if (g) groups.push(g)
        else warnings.push(`acl Secret ${namespace}/${secretName} has no group`)
      } else if (type === 'key-auth' || type === 'basic-auth' || type === 'jwt') pending.push({ type, secret, credentialId })
      else unread.push(`${type} (Secret ${namespace}/${secretName})`)
    }
    const identity: ConsumerIdentity = { id, ...(username ? { username } : {}), ...(customId ? { customId } : {}), ...(groups.length ? { groups } : {}) }
    const keys: KeyCredential[] = []
    const basics: BasicCredential[] = []
    const jwts: JwtSecret[] = []
    for (const p of pending) {
      const who = { ...identity, credentialId: p.credentialId }
      const secretLabel = `${namespace}/${p.secret.metadata.name}`
      if (p.type === 'jwt') {
        const key = secretValue(p.secret, 'key')
        const algorithm = secretValue(p.secret, 'algorithm') ?? 'HS256'
        const secret = secretValue(p.secret, 'secret')
        const pem = secretValue(p.secret, 'rsa_public_key')
        if (!key) warnings.push(`jwt Secret ${secretLabel} has no key`)
        else if (algorithm.startsWith('HS') ? !secret : !pem) warnings.push(`jwt Secret ${secretLabel} needs ${algorithm.startsWith('HS') ? 'secret' : 'rsa_public_key'}`)
        else jwts.push({ key, algorithm, ...(secret ? { secret } : {}), ...(pem && !algorithm.startsWith('HS') ? { publicKeyPem: pem } : {}), consumer: who })
      } else if (p.type === 'key-auth') {
        const key = secretValue(p.secret, 'key')
        if (!key) warnings.push(`key-auth Secret ${secretLabel} has no key`)
        else keys.push({ sha256: createHash('sha256').update(key).digest('base64'), consumer: who })
      } else {
        const user = secretValue(p.secret, 'username')
        const password = secretValue(p.secret, 'password')
        if (!user || password === undefined) warnings.push(`basic-auth Secret ${secretLabel} needs username and password`)
        else basics.push({ username: user, hash: `{SHA}${createHash('sha1').update(password).digest('base64')}`, consumer: who })
      }
    }
    out.push({ object: o, namespace, name: o.metadata.name, identity, plugins: pluginRefs(o.metadata.annotations), keys, basics, jwts, unread, problems, warnings })
  }
  rejectDuplicates(out)
  return out
}

/** Consumers sharing a key, a basic-auth username, a username or a custom_id are all rejected. */
function rejectDuplicates(consumers: Consumer[]): void {
  const owners = new Map<string, Consumer[]>()
  const note = (what: string, c: Consumer) => {
    const l = owners.get(what) ?? owners.set(what, []).get(what)!
    if (!l.includes(c)) l.push(c)
  }
  for (const c of consumers) {
    for (const k of c.keys) note(`a key-auth key`.concat('\u0000', k.sha256), c)
    for (const b of c.basics) note(`basic-auth username ${b.username}`.concat('\u0000'), c)
    for (const j of c.jwts) note(`jwt key ${j.key}`.concat('\u0000'), c)
    if (c.identity.username) note(`username ${c.identity.username}`.concat('\u0000'), c)
    if (c.identity.customId) note(`custom_id ${c.identity.customId}`.concat('\u0000'), c)
  }
  for (const [what, list] of owners) {
    if (list.length < 2) continue
    const label = what.slice(0, what.indexOf('\u0000'))
    for (const c of list) {
      const others = list.filter((o) => o !== c).map((o) => `${o.namespace}/${o.name}`)
      c.problems.push(`${label} is also used by KongConsumer ${others.join(', ')}`)
    }
  }
}

/** Accepted consumers only (no problems): their credentials are honoured. */
export function usable(consumers: readonly Consumer[]): Consumer[] {
  return consumers.filter((c) => c.problems.length === 0)
}
