/**
 * HTTPRoute filters → IR filters. Rule-level and backendRef-level filters share this code;
 * a RequestRedirect is returned separately because in the IR it is the rule's action, not a
 * filter. Anything we cannot honour is reported as `unsupported` (the route then gets
 * Accepted=False/UnsupportedValue and the rule answers 500: a filter must never be skipped).
 */
import type { HeaderModifier, HttpFilter, PathModifier, RedirectAction } from '../ir/types.ts'
import type { K8sObject } from '../store/kinds.ts'
import type { Backends, RefProblem } from './backends.ts'
import { isValidHostname } from './hostnames.ts'
import { bool, int, list, obj, objs, str, type Json } from './util.ts'

export interface FilterEnv {
  readonly route: K8sObject
  readonly backends: Backends
  readonly gateways: readonly string[]
  /** Record referenced pools (false while validating a route no Gateway accepted). */
  readonly register: boolean
  /** Collected backend reference problems (mirror targets). */
  readonly refProblems: RefProblem[]
}

export interface FilterResult {
  filters: HttpFilter[]
  redirect?: RedirectAction
  /** Needs the rule's matches to be PathPrefix (ReplacePrefixMatch). */
  needsPrefixMatch: boolean
  unsupported: string[]
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308])

export function translateFilters(raw: unknown, env: FilterEnv, scope: 'rule' | 'backend'): FilterResult {
  const out: FilterResult = { filters: [], needsPrefixMatch: false, unsupported: [] }
  const seen = new Set<string>()
  for (const f of objs(raw)) {
    const type = str(f.type) ?? ''
    // the spec allows several RequestMirror (and ExtensionRef) filters; every other type once
    if (type !== 'RequestMirror' && type !== 'ExtensionRef' && seen.has(type)) {
      out.unsupported.push(`filter ${type} may appear only once`)
      continue
    }
    seen.add(type)
    switch (type) {
      case 'RequestHeaderModifier':
      case 'ResponseHeaderModifier': {
        const m = headerModifier(obj(f[type === 'RequestHeaderModifier' ? 'requestHeaderModifier' : 'responseHeaderModifier']), out.unsupported)
        if (m) out.filters.push({ type, ...m })
        break
      }
      case 'RequestRedirect': {
        const r = redirect(obj(f.requestRedirect), out)
        if (r) out.redirect = r
        break
      }
      case 'URLRewrite': {
        const cfg = obj(f.urlRewrite)
        if (!cfg) {
          out.unsupported.push('URLRewrite needs urlRewrite')
          break
        }
        const filter: { type: 'URLRewrite'; hostname?: string; path?: PathModifier } = { type: 'URLRewrite' }
        const hostname = str(cfg.hostname)
        if (hostname !== undefined) {
          if (!isValidHostname(hostname.toLowerCase()) || hostname.startsWith('*')) out.unsupported.push(`URLRewrite hostname ${hostname} is invalid`)
          else filter.hostname = hostname.toLowerCase()
        }
        if (cfg.path !== undefined) {
          const p = pathModifier(obj(cfg.path), out)
          if (p) filter.path = p
        }
        out.filters.push(filter)
        break
      }
      case 'RequestMirror': {
        const cfg = obj(f.requestMirror)
        const ref = obj(cfg?.backendRef)
        if (!cfg || !ref) {
          out.unsupported.push('RequestMirror needs requestMirror.backendRef')
          break
        }
        const percent = mirrorPercent(cfg, out.unsupported)
        if (percent === undefined) break
        const r = env.backends.resolve(env.route, ref, 'http', env.gateways, env.register)
        if ('problem' in r) {
          if (!r.problem.silent) env.refProblems.push(r.problem)
          break
        }
        out.filters.push({ type: 'RequestMirror', backend: { pool: r.pool }, percent })
        break
      }
      case 'CORS': {
        if (scope === 'backend') {
          out.unsupported.push('CORS is not supported on backendRefs')
          break
        }
        const c = obj(f.cors) ?? {}
        const strings = (v: unknown) => list(v).filter((x): x is string => typeof x === 'string')
        const maxAge = int(c.maxAge)
        out.filters.push({
          type: 'CORS',
          allowOrigins: strings(c.allowOrigins),
          allowMethods: strings(c.allowMethods),
          allowHeaders: strings(c.allowHeaders),
          exposeHeaders: strings(c.exposeHeaders),
          allowCredentials: bool(c.allowCredentials) ?? false,
          // the spec's default: browsers cache a preflight for 5 seconds
          maxAgeSeconds: maxAge !== undefined && maxAge > 0 ? maxAge : 5,
        })
        break
      }
      case 'ExternalAuth': {
        // GEP-1494, HTTP mode: the SecurityPolicy extAuth runtime (src/policy/ext-auth/)
        const cfg = obj(f.externalAuth)
        const ref = obj(cfg?.backendRef)
        if (scope === 'backend') {
          out.unsupported.push('ExternalAuth is not supported on backendRefs')
          break
        }
        if (!cfg || !ref) {
          out.unsupported.push('ExternalAuth needs externalAuth.backendRef')
          break
        }
        if (str(cfg.protocol) !== 'HTTP') {
          out.unsupported.push(`ExternalAuth protocol ${str(cfg.protocol) ?? '(none)'} is not supported (HTTP is)`)
          break
        }
        if (cfg.forwardBody !== undefined) {
          out.unsupported.push('ExternalAuth forwardBody is not supported')
          break
        }
        const r = env.backends.resolve(env.route, ref, 'http', env.gateways, env.register)
        if ('problem' in r) {
          if (!r.problem.silent) env.refProblems.push(r.problem)
          break
        }
        const http = obj(cfg.http) ?? {}
        const names = (v: unknown) => list(v).filter((x): x is string => typeof x === 'string' && HEADER_NAME.test(x))
        const path = str(http.path)
        out.filters.push({
          type: 'ExternalAuth',
          pool: r.pool,
          path: path?.startsWith('/') ? path : '/',
          headersToExtAuth: names(http.allowedHeaders),
          headersToBackend: names(http.allowedResponseHeaders),
          failOpen: false,
          timeoutMs: 10_000,
        })
        break
      }
      case 'ExtensionRef':
        // a KongPlugin for this rule: src/kong reads it (see KongIndex.rule)
        if (str(obj(f.extensionRef)?.group) === 'configuration.konghq.com' && str(obj(f.extensionRef)?.kind) === 'KongPlugin') break
        out.unsupported.push(`ExtensionRef ${str(obj(f.extensionRef)?.kind) ?? ''} ${str(obj(f.extensionRef)?.name) ?? ''} is not supported`.replace(/\s+/g, ' '))
        break
      default:
        out.unsupported.push(`filter type ${type || '(none)'} is not supported`)
    }
  }
  if (out.redirect && out.filters.some((f) => f.type === 'URLRewrite')) out.unsupported.push('RequestRedirect and URLRewrite cannot be combined')
  return out
}

function headerModifier(cfg: Json | undefined, unsupported: string[]): HeaderModifier | undefined {
  if (!cfg) {
    unsupported.push('header modifier filter needs its configuration')
    return undefined
  }
  const pairs = (v: unknown) => {
    const out: [string, string][] = []
    const names = new Set<string>()
    for (const h of objs(v)) {
      const name = str(h.name)
      const value = str(h.value) ?? ''
      if (!name || !HEADER_NAME.test(name)) {
        unsupported.push(`invalid header name ${name ?? '(none)'}`)
        continue
      }
      // the spec: the first of several entries with an equivalent name wins
      if (names.has(name.toLowerCase())) continue
      names.add(name.toLowerCase())
      out.push([name, value])
    }
    return out
  }
  const remove = list(cfg.remove).filter((n): n is string => typeof n === 'string' && HEADER_NAME.test(n))
  return { set: pairs(cfg.set), add: pairs(cfg.add), remove: [...new Set(remove)] }
}

function pathModifier(cfg: Json | undefined, out: FilterResult): PathModifier | undefined {
  const type = str(cfg?.type)
  if (type === 'ReplaceFullPath') {
    const value = str(cfg?.replaceFullPath)
    if (value !== undefined && value.startsWith('/')) return { type, value }
  } else if (type === 'ReplacePrefixMatch') {
    const value = str(cfg?.replacePrefixMatch)
    if (value !== undefined && value.startsWith('/')) {
      out.needsPrefixMatch = true
      return { type, value }
    }
  }
  out.unsupported.push(`path modifier ${type ?? '(none)'} needs a value starting with "/"`)
  return undefined
}

function redirect(cfg: Json | undefined, out: FilterResult): RedirectAction | undefined {
  if (!cfg) {
    out.unsupported.push('RequestRedirect needs requestRedirect')
    return undefined
  }
  const code = cfg.statusCode === undefined ? 302 : int(cfg.statusCode)
  if (code === undefined || !REDIRECT_CODES.has(code)) {
    out.unsupported.push(`redirect statusCode ${String(cfg.statusCode)} is not supported`)
    return undefined
  }
  const r: { -readonly [K in keyof RedirectAction]: RedirectAction[K] } = { kind: 'redirect', statusCode: code as RedirectAction['statusCode'] }
  const scheme = str(cfg.scheme)
  if (scheme !== undefined) {
    if (scheme !== 'http' && scheme !== 'https') {
      out.unsupported.push(`redirect scheme ${scheme} is not supported`)
      return undefined
    }
    r.scheme = scheme
  }
  const hostname = str(cfg.hostname)
  if (hostname !== undefined) {
    if (!isValidHostname(hostname.toLowerCase()) || hostname.startsWith('*')) {
      out.unsupported.push(`redirect hostname ${hostname} is invalid`)
      return undefined
    }
    r.hostname = hostname.toLowerCase()
  }
  if (cfg.port !== undefined) {
    const port = int(cfg.port)
    if (port === undefined || port < 1 || port > 65535) {
      out.unsupported.push(`redirect port ${String(cfg.port)} is invalid`)
      return undefined
    }
    r.port = port
  }
  if (cfg.path !== undefined) {
    const p = pathModifier(obj(cfg.path), out)
    if (!p) return undefined
    r.path = p
  }
  return r
}

/** percent (0-100) or fraction (numerator/denominator, default denominator 100); default 100. */
function mirrorPercent(cfg: Json, unsupported: string[]): number | undefined {
  if (cfg.percent !== undefined && cfg.fraction !== undefined) {
    unsupported.push('RequestMirror takes percent or fraction, not both')
    return undefined
  }
  if (cfg.percent !== undefined) {
    const p = int(cfg.percent)
    if (p === undefined || p < 0 || p > 100) {
      unsupported.push(`RequestMirror percent ${String(cfg.percent)} must be 0-100`)
      return undefined
    }
    return p
  }
  const fraction = obj(cfg.fraction)
  if (fraction) {
    const num = int(fraction.numerator)
    const den = fraction.denominator === undefined ? 100 : int(fraction.denominator)
    if (num === undefined || den === undefined || den < 1 || num < 0 || num > den) {
      unsupported.push('RequestMirror fraction must satisfy 0 <= numerator <= denominator, denominator >= 1')
      return undefined
    }
    return (num / den) * 100
  }
  return 100
}
