// The two lines that tell a connection's story: one when it opens, one when it
// closes. Nothing per message. Never the URL: it may carry the `token` query
// parameter.
import type { RealtimeConnection } from './connection.js'
import { kMessagesIn, kMessagesOut } from './symbols.js'
import type { ConnectionLogLevel } from './types.js'

/** `fastify-realtime: connection open` with connId, route, sub and the remote address (`request.ip`: the proxy's client when the app trusts it). */
export function logOpened (conn: RealtimeConnection, level: ConnectionLogLevel): void {
  if (level === 'silent') return
  conn.log[level]({ connId: conn.id, route: conn.route.path, sub: conn.sub, remoteAddress: conn.request.ip }, 'fastify-realtime: connection open')
}

/** `fastify-realtime: connection closed` with the close code and reason, how long it lasted, and the messages in and out. */
export function logClosed (conn: RealtimeConnection, code: number, reason: string, durationMs: number, level: ConnectionLogLevel): void {
  if (level === 'silent') return
  conn.log[level]({
    connId: conn.id,
    route: conn.route.path,
    code,
    reason,
    durationMs,
    messagesIn: conn[kMessagesIn],
    messagesOut: conn[kMessagesOut]
  }, 'fastify-realtime: connection closed')
}
