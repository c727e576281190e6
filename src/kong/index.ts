/**
 * Kong's configuration surface (KIC 3.x semantics) onto Portico's policy IR: which KongPlugins
 * apply to each HTTPRoute rule, with which configuration, for which consumer.
 *
 * Attachment: `konghq.com/plugins: "a, b, ns:c"` on the HTTPRoute (all its rules), on a Service
 * (the rules whose backendRefs use it) and on a KongConsumer; an ExtensionRef filter of kind
 * KongPlugin (one rule); KongClusterPlugins labelled `global: "true"` (every rule). A name
 * resolves to the KongPlugin in the referrer's namespace (or `ns:`, which needs a ReferenceGrant
 * there), else the KongClusterPlugin of that name.
 *
 * Precedence, one configuration per plugin name (Kong's): route+consumer > service+consumer >
 * consumer > route > service > global. As in KIC, a KongPlugin named by a consumer *and* by a
 * route (or Service) is one plugin scoped to both: it applies to that consumer on that route only.
 * Configurations that depend on the consumer become a `perConsumer` feature.
 *
 * Fail closed: a plugin that cannot be resolved or translated (unknown, unsupported, invalid)
 * makes the rule a problem: Accepted=False naming it, and the rule answers 500.
 *
 * Built once per world (plugins, consumers, Secrets, Services are all world kinds).
 */
import type { HttpRetry } from '../ir/types.ts'
import type { PolicyIr } from '../policy/kind.ts'
import { findByKey } from '../policy/translate-context.ts'
import { condition } from '../status/conditions.ts'
import { objectKey, type K8sObject } from '../store/kinds.ts'
import type { ResourceView } from '../store/store.ts'
import { isReferenceAllowed } from '../translate/reference-grant.ts'
import type { StatusMap } from '../translate/types.ts'
import { obj, objs, str, type Json } from '../translate/util.ts'
import { pluginRefs, readConsumers, usable, type Consumer } from './consumers.ts'
import { GLOBAL_LABEL, KONG_GROUP } from './kinds.ts'
import { readPluginObject, type KongPluginObject } from './objects.ts'
import { routeAnnotations, serviceAnnotations, type ServiceAnnotations, type UpstreamRewrite } from './annotations.ts'
import { isAuthPlugin, PRIORITY, translatePlugin, type PluginEnv, type PluginTranslation } from './plugins.ts'

export interface KongRule {
  /** Features for the rule, in Kong's priority order. */
  readonly policies?: readonly PolicyIr[]
  /** Why the rule cannot be served as configured (each names the plugin). */
  readonly problems: readonly string[]
  /** Upstream Host and path from preserve-host and the Service's host-header and path. */
  readonly rewrite?: UpstreamRewrite
  /** konghq.com annotations Portico does not read (said in the route's Accepted message). */
  readonly ignored?: readonly string[]
  /** The Service's `read-timeout` (ms): the rule's backend request timeout unless the route sets one. */
  readonly backendTimeoutMs?: number
  /** The Service's `retries`: retries of connection failures, unless the route sets `retry`. */
  readonly retry?: HttpRetry
}

type Level = PluginEnv['level']
type Resolved = KongPluginObject | { readonly problem: string }

const NOTHING: KongRule = { problems: [] }

export class KongIndex {
  readonly #view: ResourceView
  readonly #objects = new Map<string, KongPluginObject | string>()
  readonly #consumers: readonly Consumer[]
  readonly #usable: readonly Consumer[]
  readonly #globals: Resolved[] = []
  /** Plugin keys → the accepted consumers naming them. */
  readonly #byConsumers = new Map<string, { consumer: Consumer; plugin: KongPluginObject }[]>()
  /** Plugin keys named by some HTTPRoute or Service (a consumer's plugin there is scoped to it). */
  readonly #onRoutesOrServices = new Set<string>()
  readonly #translations = new Map<string, PluginTranslation | string>()

  static build(view: ResourceView): KongIndex {
    return new KongIndex(view)
  }

  private constructor(view: ResourceView) {
    this.#view = view
    for (const o of [...view.kongPlugins, ...view.kongClusterPlugins]) this.#objects.set(keyOf(o), readPluginObject(o, view))
    this.#consumers = readConsumers(view)
    for (const o of view.kongClusterPlugins) if (o.metadata.labels?.[GLOBAL_LABEL] === 'true') this.#globals.push(this.#asResolved(keyOf(o)))
    // a consumer whose plugins cannot apply is rejected (fail closed: its credentials open nothing)
    const attached = new Map<Consumer, KongPluginObject[]>()
    for (const c of this.#consumers) {
      const plugins: KongPluginObject[] = []
      for (const ref of c.plugins) {
        const r = this.#resolve(ref, { group: KONG_GROUP, kind: 'KongConsumer', namespace: c.namespace })
        if ('problem' in r) c.problems.push(r.problem)
        else if (isAuthPlugin(r.plugin)) c.problems.push(`${r.label}: plugin ${r.plugin} cannot be attached to a consumer`)
        else plugins.push(r)
      }
      attached.set(c, plugins)
    }
    this.#usable = usable(this.#consumers)
    for (const c of this.#usable) for (const p of attached.get(c) ?? []) this.#byConsumers.set(p.key, [...(this.#byConsumers.get(p.key) ?? []), { consumer: c, plugin: p }])
    const note = (refs: readonly string[], from: { group: string; kind: string; namespace: string }) => {
      for (const ref of refs) {
        const r = this.#resolve(ref, from)
        if (!('problem' in r)) this.#onRoutesOrServices.add(r.key)
      }
    }
    for (const r of view.httpRoutes) {
      const ns = r.metadata.namespace ?? 'default'
      note(pluginRefs(r.metadata.annotations), { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: ns })
      for (const rule of objs(r.spec?.rules)) note(extensionRefs(rule), { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: ns })
    }
    for (const s of view.services) note(pluginRefs(s.metadata.annotations), { group: '', kind: 'Service', namespace: s.metadata.namespace ?? 'default' })
  }

  #asResolved(key: string): Resolved {
    const o = this.#objects.get(key)
    if (o === undefined) return { problem: `${key} not found` }
    return typeof o === 'string' ? { problem: o } : o
  }

  /** A plugins-annotation entry as the referrer sees it. */
  #resolve(ref: string, from: { group: string; kind: string; namespace: string }): Resolved {
    const colon = ref.indexOf(':')
    const ns = colon < 0 ? from.namespace : ref.slice(0, colon)
    const name = colon < 0 ? ref : ref.slice(colon + 1)
    const local = objectKey('KongPlugin', ns, name)
    if (this.#objects.has(local)) {
      if (!isReferenceAllowed(from, { group: KONG_GROUP, kind: 'KongPlugin', namespace: ns, name }, this.#view.referenceGrants))
        return { problem: `KongPlugin ${ns}/${name} is in another namespace and no ReferenceGrant allows ${from.kind} in ${from.namespace} to use it` }
      return this.#asResolved(local)
    }
    const cluster = objectKey('KongClusterPlugin', undefined, name)
    if (this.#objects.has(cluster)) return this.#asResolved(cluster)
    return { problem: `KongPlugin ${ns}/${name} not found (nor a KongClusterPlugin ${name})` }
  }

  #translate(p: KongPluginObject, level: Level): PluginTranslation | string {
    const memo = `${p.key}\u0000${level}`
    let t = this.#translations.get(memo)
    if (t === undefined) {
      t = translatePlugin(p.plugin, p.config, { consumers: this.#usable, level })
      this.#translations.set(memo, typeof t === 'string' ? `${p.label}: ${t}` : t)
      t = this.#translations.get(memo)!
    }
    return t
  }

  /** The Kong features of one HTTPRoute rule (and its problems). */
  rule(route: K8sObject, rule: Json): KongRule {
    const ns = route.metadata.namespace ?? 'default'
    const fromRoute = { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: ns }
    const routeRefs = [...pluginRefs(route.metadata.annotations), ...extensionRefs(rule)]
    const serviceRefs: { ref: string; namespace: string }[] = []
    const annotations = routeAnnotations(route)
    const ignored = [...(annotations?.ignored ?? [])]
    let rewrite: UpstreamRewrite | undefined
    let service: ServiceAnnotations | undefined
    for (const b of objs(rule.backendRefs)) {
      if ((str(b.group) ?? '') !== '' || (str(b.kind) ?? 'Service') !== 'Service' || !str(b.name)) continue
      const sns = str(b.namespace) ?? ns
      const svc = findByKey(this.#view.services, objectKey('Service', sns, str(b.name)!))
      for (const ref of pluginRefs(svc?.metadata.annotations)) serviceRefs.push({ ref, namespace: sns })
      // the first Service's host and path (Kong has one service per route)
      if (!rewrite && !service && svc) {
        const sa = serviceAnnotations(svc)
        service = sa
        ignored.push(...(sa?.ignored ?? []))
        // preserve-host false: the Host KIC's upstream gets, <service>.<namespace>.<port>.svc
        const hostname = sa?.hostHeader ?? (annotations && !annotations.preserveHost ? `${svc.metadata.name}.${sns}.${typeof b.port === 'number' ? b.port : 80}.svc` : undefined)
        if (hostname || sa?.path) rewrite = { ...(hostname ? { hostname } : {}), ...(sa?.path ? { servicePath: sa.path } : {}) }
      }
    }
    const extras = {
      ...(rewrite ? { rewrite } : {}),
      ...(ignored.length ? { ignored } : {}),
      ...(service?.readTimeoutMs !== undefined ? { backendTimeoutMs: service.readTimeoutMs } : {}),
      // Kong retries what never got an answer (connection failures, resets, timeouts), not statuses
      ...(service?.retries !== undefined ? { retry: { codes: [], attempts: service.retries, backoffMs: 0, triggers: ['connect-failure', 'reset'] } satisfies HttpRetry } : {}),
    }
    const httpsOnly: PolicyIr[] = annotations?.httpsStatus ? [{ name: 'requireHttps', id: `kong/${ns}/${route.metadata.name}#requireHttps`, spec: { status: annotations.httpsStatus } } as PolicyIr] : []
    const annotationProblems = [...(annotations?.problems ?? []), ...(service?.problems ?? [])]
    if (routeRefs.length === 0 && serviceRefs.length === 0 && this.#globals.length === 0 && this.#byConsumers.size === 0)
      return annotations || service ? { problems: annotationProblems, ...(httpsOnly.length ? { policies: httpsOnly } : {}), ...extras } : NOTHING

    const problems: string[] = [...annotationProblems]
    const levels = { route: new Map<string, KongPluginObject>(), service: new Map<string, KongPluginObject>(), global: new Map<string, KongPluginObject>() }
    const routeKeys = new Set<string>()
    const serviceKeys = new Set<string>()
    const place = (r: Resolved, level: 'route' | 'service' | 'global', keys?: Set<string>) => {
      if ('problem' in r) return problems.push(r.problem)
      keys?.add(r.key)
      if (r.disabled) return
      // named by a consumer too: scoped to that consumer here (see below), not to everyone
      if (level !== 'global' && this.#byConsumers.has(r.key)) return
      const prev = levels[level].get(r.plugin)
      if (prev && prev.key !== r.key) problems.push(`${prev.label} and ${r.label} both configure plugin ${r.plugin} on the ${level}`)
      else levels[level].set(r.plugin, r)
    }
    for (const ref of routeRefs) place(this.#resolve(ref, fromRoute), 'route', routeKeys)
    for (const s of serviceRefs) place(this.#resolve(s.ref, { group: '', kind: 'Service', namespace: s.namespace }), 'service', serviceKeys)
    for (const g of this.#globals) place(g, 'global')

    // consumer scoped: per plugin name, per consumer, the most specific combination
    const perConsumer = new Map<string, Map<Consumer, { plugin: KongPluginObject; rank: number }>>()
    for (const [key, uses] of this.#byConsumers) {
      const rank = routeKeys.has(key) ? 0 : serviceKeys.has(key) ? 1 : this.#onRoutesOrServices.has(key) ? -1 : 2
      if (rank < 0) continue // scoped to other routes or Services
      for (const { consumer, plugin } of uses) {
        if (plugin.disabled) continue
        const byConsumer = perConsumer.get(plugin.plugin) ?? perConsumer.set(plugin.plugin, new Map()).get(plugin.plugin)!
        const prev = byConsumer.get(consumer)
        if (!prev || rank < prev.rank) byConsumer.set(consumer, { plugin, rank })
        else if (rank === prev.rank && prev.plugin.key !== plugin.key) problems.push(`${prev.plugin.label} and ${plugin.label} both configure plugin ${plugin.plugin} for KongConsumer ${consumer.namespace}/${consumer.name}`)
      }
    }

    const names = new Set([...levels.route.keys(), ...levels.service.keys(), ...levels.global.keys(), ...perConsumer.keys()])
    const out: { priority: number; ir: PolicyIr }[] = []
    for (const plugin of names) {
      const base = levels.route.get(plugin) ? { p: levels.route.get(plugin)!, level: 'route' as const } : levels.service.get(plugin) ? { p: levels.service.get(plugin)!, level: 'service' as const } : levels.global.get(plugin) ? { p: levels.global.get(plugin)!, level: 'global' as const } : undefined
      const baseT = base ? this.#translate(base.p, base.level) : undefined
      if (typeof baseT === 'string') {
        problems.push(baseT)
        continue
      }
      const priority = PRIORITY[plugin] ?? 0
      const consumers = perConsumer.get(plugin)
      if (!consumers || consumers.size === 0) {
        for (const f of baseT?.features ?? []) out.push({ priority, ir: { name: f.name, id: `${base!.p.id}#${f.name}`, spec: f.spec } as PolicyIr })
        continue
      }
      const byConsumer: Record<string, PolicyIr> = {}
      let featureName: string | undefined
      let broken = false
      for (const [consumer, { plugin: p, rank }] of consumers) {
        const t = this.#translate(p, rank === 2 ? 'consumer' : rank === 1 ? 'service' : 'route')
        if (typeof t === 'string') {
          problems.push(t)
          broken = true
          break
        }
        const f = t.features[0]
        if (!f) continue
        featureName = f.name
        byConsumer[consumer.identity.id] = { name: f.name, id: `${p.id}#${f.name}`, spec: f.spec } as PolicyIr
      }
      if (broken || featureName === undefined) continue
      const otherwise = baseT?.features[0]
      out.push({
        priority,
        ir: {
          name: 'perConsumer',
          id: `kong/${plugin}/consumers`,
          spec: { feature: featureName, byConsumer, ...(otherwise ? { otherwise: { name: otherwise.name, id: `${base!.p.id}#${otherwise.name}`, spec: otherwise.spec } as PolicyIr } : {}) },
        } as PolicyIr,
      })
    }
    out.sort((a, b) => b.priority - a.priority)
    const policies = [...httpsOnly, ...out.map((o) => o.ir)]
    return {
      problems: [...new Set(problems)],
      ...(policies.length ? { policies } : {}),
      ...extras,
    }
  }

  /** KongConsumer status: Programmed, or why not (KIC reports the same condition type). */
  writeStatus(status: StatusMap): void {
    for (const c of this.#consumers) {
      const gen = typeof c.object.metadata.generation === 'number' ? c.object.metadata.generation : undefined
      const problems = c.problems
      const notes = [...c.warnings, ...c.unread.map((u) => `credential ${u} is not supported yet`)]
      const cond = problems.length
        ? condition('Programmed', 'False', 'Invalid', [...problems, ...notes].join('; '), gen)
        : condition('Programmed', 'True', 'Programmed', notes.length ? `Programmed, except: ${notes.join('; ')}` : 'Programmed', gen)
      status[`KongConsumer/${c.namespace}/${c.name}`] = { conditions: [cond] }
    }
  }
}

function keyOf(o: K8sObject): string {
  return objectKey(o.kind, o.metadata.namespace, o.metadata.name)
}

/** ExtensionRef filters of a rule naming a KongPlugin (same namespace, per the Gateway API). */
function extensionRefs(rule: Json): string[] {
  const out: string[] = []
  for (const f of objs(rule.filters)) {
    if (str(f.type) !== 'ExtensionRef') continue
    const ref = obj(f.extensionRef)
    if (ref && str(ref.group) === KONG_GROUP && str(ref.kind) === 'KongPlugin' && str(ref.name)) out.push(str(ref.name)!)
  }
  return out
}
