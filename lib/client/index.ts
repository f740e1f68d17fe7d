import { RealtimeClient } from './client.js'
import type { AcksOf, ClientOptions, IncomingOf, OutgoingOf, PayloadMap } from './types.js'

/**
 * Connect to a fastify-realtime route, from a browser or from Node.
 *
 * Type it from the server's route definition (`typeof chatRoute`, made with
 * `defineRoute`): what it sends from the route's `messages`, `request`'s result
 * from each message's `ack`, and what `on(type)` receives from its `emits`; or
 * from a plain `{ type: payload }` map. A second type argument overrides the
 * incoming types.
 * @example
 * import { createClient } from 'fastify-realtime/client'
 * const client = createClient<typeof chatRoute, { 'chat.message': { from: string, text: string } }>(
 *   'wss://example.com/chat', { getToken: () => fetchToken(), rooms: ['lobby'] })
 * client.on('chat.message', (data, msg) => console.log(msg.room, data.from, data.text))
 * client.send('chat.send', { text: 'hi' }, 'lobby')
 * const ack = await client.request('chat.send', { text: 'hi' }, { room: 'lobby', timeout: 5000 })
 */
export function createClient<R = PayloadMap, In = IncomingOf<R>> (url: string | URL, options: ClientOptions = {}): RealtimeClient<OutgoingOf<R>, In, AcksOf<R>> {
  return new RealtimeClient<OutgoingOf<R>, In, AcksOf<R>>(url, options)
}

export { RealtimeClient } from './client.js'
export { RealtimeClientError } from './error.js'
export { backoffDelay } from './backoff.js'
export type * from './types.js'
