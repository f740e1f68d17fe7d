import type { MessageSchemas, RouteDefinition, SchemaMap } from './types.js'

/**
 * Identity helper that types each handler from the route: `data` from its
 * schema, its return value from its `ack`, `conn.send`/`conn.broadcast` from
 * the route's `emits`.
 * @example
 * const chat = defineRoute({
 *   path: '/chat',
 *   emits: { 'chat.message': Type.Object({ text: Type.String() }) },
 *   messages: {
 *     'chat.send': {
 *       schema: Type.Object({ text: Type.String() }),
 *       ack: Type.Object({ ok: Type.Boolean() }),
 *       handler (conn, data, msg) { conn.broadcast(msg.room!, 'chat.message', { text: data.text }); return { ok: true } }
 *     }
 *   }
 * })
 */
export function defineRoute<M extends MessageSchemas, E extends SchemaMap = {}, A = {}> (def: RouteDefinition<M, E, A>): RouteDefinition<M, E, A> {
  return def
}
