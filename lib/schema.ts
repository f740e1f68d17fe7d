// Schemas from either TypeBox: @sinclair/typebox 0.34 (the plugin's dependency)
// and typebox 1.x (an optional peer, ESM only, loaded on first need). Both
// compile to one SchemaCheck whose errors have 0.34's shape: a path per
// failing value, a missing property at its own path.
import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { errors } from './errors.js'

/** One schema failure: where (a JSON pointer, '' for the root) and what. */
export interface SchemaError {
  path: string
  message: string
}

/** A compiled schema. */
export interface SchemaCheck {
  Check (value: unknown): boolean
  Errors (value: unknown): Iterable<SchemaError>
}

/** TypeBox 1.x's errors: Ajv-shaped. */
interface AjvError {
  keyword: string
  schemaPath: string
  instancePath: string
  params: Record<string, unknown>
  message: string
}

interface ValidatorV1 {
  Check (value: unknown): boolean
  Errors (value: unknown): AjvError[]
}

type CompileV1 = (schema: unknown) => ValidatorV1

const TYPEBOX_KIND = Symbol.for('TypeBox.Kind')

/**
 * Whether `schema` was built with TypeBox 1.x: it carries a `~kind` (or, from
 * `Type.Unsafe`, `~unsafe`) property, and not 0.34's symbol.
 */
export function isTypeBox1 (schema: unknown): boolean {
  if (typeof schema !== 'object' || schema === null || TYPEBOX_KIND in schema) return false
  return typeof (schema as Record<string, unknown>)['~kind'] === 'string' || '~unsafe' in schema
}

let compileV1: CompileV1 | undefined
let loadingV1: Promise<CompileV1> | undefined

/** ESM's import() from the CommonJS build too, where TypeScript would turn `import()` into require(). */
async function importEsm (specifier: string): Promise<{ Compile: CompileV1 }> {
  // eslint-disable-next-line no-new-func -- the one way to keep import() in CommonJS output
  return await (new Function('specifier', 'return import(specifier)') as (s: string) => Promise<{ Compile: CompileV1 }>)(specifier)
}

async function importCompiler (): Promise<CompileV1> {
  let mod: { Compile: CompileV1 }
  try {
    mod = await import('typebox/compile') as unknown as { Compile: CompileV1 }
  } catch (err) {
    // the CommonJS build on a Node without require(esm) (before 20.19)
    if ((err as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw err
    mod = await importEsm('typebox/compile')
  }
  return mod.Compile
}

/** Load TypeBox 1.x's compiler once per process; FST_REALTIME_MISSING_PEER when `typebox` is not installed. */
export async function loadTypeBox1 (): Promise<CompileV1> {
  loadingV1 ??= importCompiler().then((compile) => {
    compileV1 = compile
    return compile
  }, (err: unknown) => {
    loadingV1 = undefined
    throw new errors.FST_REALTIME_MISSING_PEER('a TypeBox 1.x schema', 'typebox', { cause: err })
  })
  return await loadingV1
}

/** Escape a property name for a JSON pointer, as 0.34 does. */
function pointer (base: string, key: string): string {
  return `${base}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`
}

/**
 * TypeBox 1.x's Ajv-shaped errors as 0.34 reports them: each missing and each
 * unexpected property at its own path; a failed union once, at the union's path
 * (not once per branch); no error twice.
 */
export function * errorsLike034 (list: readonly AjvError[]): Iterable<SchemaError> {
  const unions = list.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => `${e.schemaPath}/${e.keyword}/`)
  const seen = new Set<string>()
  for (const error of list) {
    if (unions.some((prefix) => error.schemaPath.startsWith(prefix))) continue
    // `additionalProperties: false` fails twice: once per property ("schema is false"), once for the object
    if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) continue
    let found: SchemaError[]
    const { requiredProperties, additionalProperties } = error.params
    if (error.keyword === 'required' && Array.isArray(requiredProperties)) {
      found = requiredProperties.map((key) => ({ path: pointer(error.instancePath, String(key)), message: `must have required property '${String(key)}'` }))
    } else if (error.keyword === 'additionalProperties' && Array.isArray(additionalProperties)) {
      found = additionalProperties.map((key) => ({ path: pointer(error.instancePath, String(key)), message: 'must not be present (no additional properties)' }))
    } else {
      found = [{ path: error.instancePath, message: error.message }]
    }
    for (const one of found) {
      const key = `${one.path}\u0000${one.message}`
      if (seen.has(key)) continue
      seen.add(key)
      yield one
    }
  }
}

function checkOfV1 (validator: ValidatorV1): SchemaCheck {
  return {
    Check: (value) => validator.Check(value),
    Errors: (value) => errorsLike034(validator.Errors(value))
  }
}

/**
 * Compiles route schemas of either TypeBox, one per app. A 1.x schema met
 * before its compiler is loaded (a route added with `app.realtime.route` after
 * registration) compiles as soon as it is; `settled()`, awaited before the app
 * is ready, reports a failure.
 */
export class SchemaCompiler {
  readonly #deferred: Array<Promise<void>> = []

  /** Load TypeBox 1.x's compiler now if any of `schemas` needs it. */
  async prepare (schemas: Iterable<unknown>): Promise<void> {
    for (const schema of schemas) {
      if (compileV1 === undefined && isTypeBox1(schema)) {
        await loadTypeBox1()
        return
      }
    }
  }

  /**
   * Compile `schema`. Throws what the compiler throws for a schema it cannot
   * compile; for a deferred 1.x schema, `settled()` rejects with `fail(err)`.
   */
  compile (schema: unknown, fail: (err: unknown) => Error): SchemaCheck {
    if (!isTypeBox1(schema)) return TypeCompiler.Compile(schema as TSchema)
    if (compileV1 !== undefined) return checkOfV1(compileV1(schema))
    let inner: SchemaCheck | undefined
    this.#deferred.push(loadTypeBox1().then((compile) => {
      try {
        inner = checkOfV1(compile(schema))
      } catch (err) {
        throw fail(err)
      }
    }))
    const notYet = (): never => {
      throw new Error('fastify-realtime: a TypeBox 1.x schema is used before its compiler loaded; await app.ready() first')
    }
    return {
      Check: (value) => inner === undefined ? notYet() : inner.Check(value),
      Errors: (value) => inner === undefined ? notYet() : inner.Errors(value)
    }
  }

  /** Wait for deferred compilations; the first failure rejects. */
  async settled (): Promise<void> {
    while (this.#deferred.length > 0) await this.#deferred.shift()
  }
}

/**
 * A schema as plain JSON Schema: TypeBox's symbols and hidden `~` properties
 * dropped (they are not JSON), for documents such as AsyncAPI.
 */
export function jsonSchemaOf (schema: unknown): Record<string, unknown> {
  const json = JSON.stringify(schema, (key, value: unknown) => key.startsWith('~') ? undefined : value)
  return json === undefined ? {} : JSON.parse(json)
}

/** A canonical string of a schema (keys sorted), to tell whether two declarations are the same schema. */
export function schemaFingerprint (schema: unknown): string {
  return JSON.stringify(schema, (_key, value: unknown) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
    const sorted: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) if (!key.startsWith('~')) sorted[key] = (value as Record<string, unknown>)[key]
    return sorted
  })
}
