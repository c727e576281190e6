/**
 * The Kong Ingress Controller kinds Portico reads (group configuration.konghq.com), registered
 * in the store's one table (src/store/kinds.ts). All are 'world' kinds: a plugin or consumer can
 * change any route, so a change to one retranslates everything (as a Secret does).
 */
export const KONG_GROUP = 'configuration.konghq.com'

export const KONG_KINDS = [
  { kind: 'KongPlugin', group: KONG_GROUP, namespaced: true, view: 'kongPlugins', plural: 'kongplugins', role: 'world' },
  { kind: 'KongClusterPlugin', group: KONG_GROUP, namespaced: false, view: 'kongClusterPlugins', plural: 'kongclusterplugins', role: 'world' },
  { kind: 'KongConsumer', group: KONG_GROUP, namespaced: true, view: 'kongConsumers', plural: 'kongconsumers', role: 'world', status: 'own' },
] as const

/** Annotations and labels KIC reads (the ones Portico honours are listed in README "Coming from Kong"). */
export const PLUGINS_ANNOTATION = 'konghq.com/plugins'
export const GLOBAL_LABEL = 'global'
export const CREDENTIAL_LABEL = 'konghq.com/credential'
