import type { TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import { compileSchema } from './envelope.js'
import { errors } from './errors.js'
import { RESERVED_TYPES } from './protocol.js'
import type { MessageDefinition, RouteDefinition } from './types.js'

export interface CompiledMessage {
  check: TypeCheck<TSchema>
  handler: MessageDefinition['handler']
}

/** A route definition with its schemas compiled, once, at registration (as fastify's lib/context.js). */
export interface CompiledRoute {
  path: string
  messages: ReadonlyMap<string, CompiledMessage>
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

/** Compile one message schema, or fail naming the route and the message type. */
function compileMessageSchema (path: string, type: string, schema: TSchema): TypeCheck<TSchema> {
  try {
    return compileSchema(schema)
  } catch (err) {
    return invalid(path, `message "${type}": its schema is not one TypeBox can compile (build it with Type.* from @sinclair/typebox, or Type.Unsafe() around a plain JSON Schema): ${(err as Error).message}`)
  }
}

/**
 * Validate a route definition and compile each message schema. A route
 * without `canJoin` takes `defaultCanJoin` (the plugin-level rule).
 */
export function compileRoute (def: RouteDefinition<any>, defaultCanJoin?: RouteDefinition['canJoin']): CompiledRoute {
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
    if (message.schema === null || typeof message.schema !== 'object') invalid(def.path, `message "${type}" needs a TypeBox schema`)
    messages.set(type, { check: compileMessageSchema(def.path, type, message.schema), handler: message.handler })
  }
  return {
    path: def.path,
    messages,
    canJoin: def.canJoin ?? defaultCanJoin,
    onConnect: def.onConnect,
    onClose: def.onClose,
    presence: def.presence === true
  }
}
