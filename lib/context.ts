import { errors } from './errors.js'
import { RESERVED_TYPES } from './protocol.js'
import { SchemaCompiler, type SchemaCheck } from './schema.js'
import type { MessageDefinition, RouteDefinition } from './types.js'

/** A schema as declared, and compiled. */
export interface CompiledSchema {
  schema: object
  check: SchemaCheck
}

export interface CompiledMessage {
  /** the message type */
  type: string
  schema: object
  check: SchemaCheck
  handler: MessageDefinition['handler']
  /** the declared ack schema, if any */
  ack: CompiledSchema | undefined
}

/** A route definition with its schemas compiled, once, at registration (as fastify's lib/context.js). */
export interface CompiledRoute {
  path: string
  messages: ReadonlyMap<string, CompiledMessage>
  /** what the server declares it sends on this route */
  emits: ReadonlyMap<string, CompiledSchema>
  canJoin: RouteDefinition['canJoin']
  onConnect: RouteDefinition['onConnect']
  onClose: RouteDefinition['onClose']
  presence: boolean
}

function invalid (path: unknown, problem: string): never {
  throw new errors.FST_REALTIME_INVALID_ROUTE(JSON.stringify(path), problem)
}

function optionalFunction (def: RouteDefinition, name: 'canJoin' | 'onConnect' | 'onClose'): void {
  if (def[name] !== undefined && typeof def[name] !== 'function') invalid(def.path, `${name} must be a function`)
}

/** Compile one schema, or fail naming the route and what the schema is for. */
function compileOne (schemas: SchemaCompiler, path: string, what: string, schema: unknown): CompiledSchema {
  if (schema === null || typeof schema !== 'object') invalid(path, `${what} needs a TypeBox schema`)
  const fail = (err: unknown): Error => new errors.FST_REALTIME_INVALID_ROUTE(JSON.stringify(path), `${what}: its schema is not one TypeBox can compile (build it with Type.* from @sinclair/typebox or typebox, or Type.Unsafe() around a plain JSON Schema): ${(err as Error).message}`)
  try {
    return { schema, check: schemas.compile(schema, fail) }
  } catch (err) {
    throw fail(err)
  }
}

/** Every schema of a route definition (messages, acks, emits), as given; for loading TypeBox 1.x ahead. */
export function * schemasOf (def: RouteDefinition<any, any, any>): Iterable<unknown> {
  const messages = def?.messages ?? {}
  for (const message of Object.values(messages) as Array<Partial<MessageDefinition> | undefined>) {
    yield message?.schema
    yield message?.ack
  }
  yield * Object.values(def?.emits ?? {})
}

const defaultCompiler = new SchemaCompiler()

/**
 * Validate a route definition and compile each schema (message, ack, emitted
 * type). A route without `canJoin` takes `defaultCanJoin` (the plugin-level rule).
 */
export function compileRoute (def: RouteDefinition<any, any, any>, defaultCanJoin?: RouteDefinition['canJoin'], schemas = defaultCompiler): CompiledRoute {
  if (def === null || typeof def !== 'object') invalid(def, 'must be an object')
  if (typeof def.path !== 'string' || !def.path.startsWith('/')) invalid(def.path, 'path must be a string starting with /')
  optionalFunction(def, 'canJoin')
  optionalFunction(def, 'onConnect')
  optionalFunction(def, 'onClose')
  if (def.presence !== undefined && typeof def.presence !== 'boolean') invalid(def.path, 'presence must be a boolean')
  const messages = new Map<string, CompiledMessage>()
  for (const [type, message] of Object.entries(def.messages ?? {}) as Array<[string, MessageDefinition]>) {
    if (RESERVED_TYPES.has(type)) invalid(def.path, `message type "${type}" is reserved by the protocol`)
    if (typeof message?.handler !== 'function') invalid(def.path, `message "${type}" needs a handler function`)
    const { schema, check } = compileOne(schemas, def.path, `message "${type}"`, message.schema)
    const ack = message.ack === undefined ? undefined : compileOne(schemas, def.path, `the ack of message "${type}"`, message.ack)
    messages.set(type, { type, schema, check, handler: message.handler, ack })
  }
  const emits = new Map<string, CompiledSchema>()
  if (def.emits !== undefined && (def.emits === null || typeof def.emits !== 'object' || Array.isArray(def.emits))) {
    invalid(def.path, 'emits must be an object of { [type]: schema }')
  }
  for (const [type, schema] of Object.entries(def.emits ?? {})) {
    if (RESERVED_TYPES.has(type)) invalid(def.path, `emitted type "${type}" is reserved by the protocol`)
    if (type === '' || type.length > 128) invalid(def.path, `emitted type ${JSON.stringify(type.slice(0, 140))} must be 1 to 128 characters`)
    emits.set(type, compileOne(schemas, def.path, `emitted type "${type}"`, schema))
  }
  return {
    path: def.path,
    messages,
    emits,
    canJoin: def.canJoin ?? defaultCanJoin,
    onConnect: def.onConnect,
    onClose: def.onClose,
    presence: def.presence === true
  }
}
