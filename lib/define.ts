import type { MessageSchemas, RouteDefinition } from './types.js'

/**
 * Identity helper that types each handler's `data` from its schema.
 * @example
 * const chat = defineRoute({
 *   path: '/chat',
 *   messages: { 'chat.send': { schema: Type.Object({ text: Type.String() }), handler (conn, data) { data.text } } }
 * })
 */
export function defineRoute<M extends MessageSchemas> (def: RouteDefinition<M>): RouteDefinition<M> {
  return def
}
