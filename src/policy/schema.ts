/**
 * A small schema language for policy specs, written once per CRD and used twice: translators
 * validate objects with it (file mode has no API server to do it, and Kubernetes mode must not
 * trust that the installed CRD is current), and docker/deploy/*-crd-*.yaml is generated from it
 * (openapi.ts; test/policy/crds.test.ts keeps the files up to date).
 *
 * `unsupported` marks an Envoy Gateway field Portico does not implement yet: the API server
 * accepts it (x-kubernetes-preserve-unknown-fields) and the policy's status says it is not
 * supported, rather than the field vanishing silently.
 */

export type Schema = ObjectSchema | StringSchema | IntegerSchema | BooleanSchema | ArraySchema | QuantitySchema | UnsupportedSchema | MapSchema

interface Common {
  readonly description?: string
}

/** A cross-field rule: the CEL form goes into the CRD (x-kubernetes-validations), `check` is ours. */
export interface Rule {
  readonly cel: string
  readonly message: string
  readonly check: (value: Record<string, unknown>) => boolean
}

export interface ObjectSchema extends Common {
  readonly type: 'object'
  readonly properties: Readonly<Record<string, Schema>>
  readonly required?: readonly string[]
  readonly rules?: readonly Rule[]
  /** At least this many fields set (EG's MinProperties). */
  readonly minProperties?: number
}

export interface StringSchema extends Common {
  readonly type: 'string'
  readonly enum?: readonly string[]
  readonly pattern?: string
  readonly minLength?: number
  readonly maxLength?: number
  /** Gateway API Duration ("5s", "1m30s", "500ms"); checked by pattern. */
  readonly duration?: boolean
}

export interface IntegerSchema extends Common {
  readonly type: 'integer'
  readonly minimum?: number
  readonly maximum?: number
}

export interface BooleanSchema extends Common {
  readonly type: 'boolean'
}

export interface ArraySchema extends Common {
  readonly type: 'array'
  readonly items: Schema
  readonly minItems?: number
  readonly maxItems?: number
}

/** A Kubernetes resource.Quantity as Envoy Gateway uses it: an integer, or a string like "2Ki" or "10k". */
export interface QuantitySchema extends Common {
  readonly type: 'quantity'
}

/** Envoy Gateway's pattern for quantities (e.g. compression's minContentLength). */
export const QUANTITY_PATTERN = '^[1-9]+[0-9]*([EPTGMK]i|[EPTGMk])?$'

/** A map with free keys and values of one schema (CRD additionalProperties), e.g. a field rename table. */
export interface MapSchema extends Common {
  readonly type: 'map'
  readonly values: Schema
}

export interface UnsupportedSchema extends Common {
  readonly type: 'unsupported'
}

/** Gateway API Duration (GEP-2257). */
export const DURATION_PATTERN = '^([0-9]{1,5}(h|m|s|ms)){1,4}$'

// ---------------------------------------------------------------- builders

export const object = (properties: Record<string, Schema>, extra: Omit<ObjectSchema, 'type' | 'properties'> = {}): ObjectSchema => ({ type: 'object', properties, ...extra })
export const string = (extra: Omit<StringSchema, 'type'> = {}): StringSchema => ({ type: 'string', ...extra })
export const integer = (extra: Omit<IntegerSchema, 'type'> = {}): IntegerSchema => ({ type: 'integer', ...extra })
export const boolean = (extra: Omit<BooleanSchema, 'type'> = {}): BooleanSchema => ({ type: 'boolean', ...extra })
export const array = (items: Schema, extra: Omit<ArraySchema, 'type' | 'items'> = {}): ArraySchema => ({ type: 'array', items, ...extra })
export const duration = (description?: string): StringSchema => ({ type: 'string', duration: true, pattern: DURATION_PATTERN, ...(description ? { description } : {}) })
export const quantity = (description?: string): QuantitySchema => ({ type: 'quantity', ...(description ? { description } : {}) })
export const map = (values: Schema, extra: Omit<MapSchema, 'type' | 'values'> = {}): MapSchema => ({ type: 'map', values, ...extra })
export const unsupported = (description?: string): UnsupportedSchema => ({ type: 'unsupported', ...(description ? { description } : {}) })

/** Exactly one of these fields is set (a Rule in both forms). */
export function exactlyOne(fields: readonly string[], message = `exactly one of ${fields.join(', ')} must be set`): Rule {
  return {
    cel: fields.map((f) => fields.map((g) => (g === f ? `has(self.${g})` : `!has(self.${g})`)).join(' && ')).map((c) => `(${c})`).join(' || '),
    message,
    check: (v) => fields.filter((f) => v[f] !== undefined).length === 1,
  }
}

/** At most one of these fields is set. */
export function atMostOne(fields: readonly string[], message = `at most one of ${fields.join(', ')} may be set`): Rule {
  return {
    cel: `[${fields.map((f) => `has(self.${f})`).join(', ')}].filter(x, x).size() <= 1`,
    message,
    check: (v) => fields.filter((f) => v[f] !== undefined).length <= 1,
  }
}

// ---------------------------------------------------------------- validation

export interface SchemaProblems {
  /** The object does not fit the schema: the policy is rejected. */
  readonly errors: string[]
  /** Fields set that Portico does not implement yet (paths, e.g. "spec.tcpKeepalive"). */
  readonly unsupported: string[]
}

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** Checks `value` against `schema`, collecting every problem (not just the first). */
export function validate(schema: Schema, value: unknown, path: string, out: SchemaProblems = { errors: [], unsupported: [] }): SchemaProblems {
  const fail = (what: string) => void out.errors.push(`${path}: ${what}`)
  switch (schema.type) {
    case 'unsupported':
      out.unsupported.push(path)
      break
    case 'object': {
      if (!isMap(value)) return fail('must be an object'), out
      for (const [k, v] of Object.entries(value)) {
        const sub = schema.properties[k]
        if (!sub) fail(`unknown field "${k}"`)
        else if (v !== undefined && v !== null) validate(sub, v, `${path}.${k}`, out)
      }
      for (const k of schema.required ?? []) if (value[k] === undefined || value[k] === null) fail(`${k} is required`)
      if (schema.minProperties !== undefined && Object.keys(value).length < schema.minProperties) fail(`must set at least ${schema.minProperties} field(s)`)
      for (const r of schema.rules ?? []) if (!r.check(value)) fail(r.message)
      break
    }
    case 'string':
      if (typeof value !== 'string') return fail('must be a string'), out
      if (schema.enum && !schema.enum.includes(value)) fail(`must be one of ${schema.enum.join(', ')} (got ${JSON.stringify(value)})`)
      else if (schema.duration && !new RegExp(DURATION_PATTERN).test(value)) fail(`${JSON.stringify(value)} is not a duration (e.g. "5s", "1m30s", "500ms")`)
      else if (schema.pattern && !schema.duration && !new RegExp(schema.pattern).test(value)) fail(`${JSON.stringify(value)} must match ${schema.pattern}`)
      if (schema.minLength !== undefined && value.length < schema.minLength) fail(`must be at least ${schema.minLength} characters`)
      if (schema.maxLength !== undefined && value.length > schema.maxLength) fail(`must be at most ${schema.maxLength} characters`)
      break
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) return fail('must be an integer'), out
      if (schema.minimum !== undefined && value < schema.minimum) fail(`must be at least ${schema.minimum}`)
      if (schema.maximum !== undefined && value > schema.maximum) fail(`must be at most ${schema.maximum}`)
      break
    case 'boolean':
      if (typeof value !== 'boolean') fail('must be true or false')
      break
    case 'quantity':
      if (typeof value === 'number') {
        if (!Number.isInteger(value) || value < 0) fail('must be a non-negative integer or a quantity such as "2Ki"')
      } else if (typeof value !== 'string' || !new RegExp(QUANTITY_PATTERN).test(value)) fail(`${JSON.stringify(value)} must be an integer or a quantity such as "2Ki"`)
      break
    case 'map':
      if (!isMap(value)) return fail('must be a map'), out
      for (const [k, v] of Object.entries(value)) validate(schema.values, v, `${path}.${k}`, out)
      break
    case 'array':
      if (!Array.isArray(value)) return fail('must be a list'), out
      if (schema.minItems !== undefined && value.length < schema.minItems) fail(`must have at least ${schema.minItems} item(s)`)
      if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`must have at most ${schema.maxItems} items`)
      value.forEach((v, i) => validate(schema.items, v, `${path}[${i}]`, out))
      break
  }
  return out
}

// ---------------------------------------------------------------- OpenAPI v3 (CRD)

/** The CRD (structural, apiextensions.k8s.io/v1) form of a schema. */
export function toOpenApi(schema: Schema): Record<string, unknown> {
  const d = schema.description ? { description: schema.description } : {}
  switch (schema.type) {
    case 'unsupported':
      return { description: schema.description ?? 'Envoy Gateway field not supported by Portico yet: accepted here, reported in status.', 'x-kubernetes-preserve-unknown-fields': true }
    case 'object': {
      const out: Record<string, unknown> = { ...d, type: 'object' }
      if (schema.minProperties !== undefined) out.minProperties = schema.minProperties
      out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, toOpenApi(v)]))
      if (schema.required?.length) out.required = [...schema.required]
      if (schema.rules?.length) out['x-kubernetes-validations'] = schema.rules.map((r) => ({ rule: r.cel, message: r.message }))
      return out
    }
    case 'string': {
      const out: Record<string, unknown> = { ...d, type: 'string' }
      if (schema.enum) out.enum = [...schema.enum]
      if (schema.pattern) out.pattern = schema.pattern
      if (schema.minLength !== undefined) out.minLength = schema.minLength
      if (schema.maxLength !== undefined) out.maxLength = schema.maxLength
      return out
    }
    case 'integer': {
      const out: Record<string, unknown> = { ...d, type: 'integer' }
      if (schema.minimum !== undefined) out.minimum = schema.minimum
      if (schema.maximum !== undefined) out.maximum = schema.maximum
      return out
    }
    case 'boolean':
      return { ...d, type: 'boolean' }
    case 'map':
      return { ...d, type: 'object', additionalProperties: toOpenApi(schema.values) }
    case 'quantity':
      return { ...d, anyOf: [{ type: 'integer' }, { type: 'string' }], pattern: QUANTITY_PATTERN, 'x-kubernetes-int-or-string': true }
    case 'array': {
      const out: Record<string, unknown> = { ...d, type: 'array', items: toOpenApi(schema.items) }
      if (schema.minItems !== undefined) out.minItems = schema.minItems
      if (schema.maxItems !== undefined) out.maxItems = schema.maxItems
      return out
    }
  }
}
