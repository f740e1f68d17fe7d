// The two lines that tell a connection's story: one when it opens, one when it
// closes. Nothing per message. Never the URL: it may carry the `token` query
// parameter.
import type { FastifyBaseLogger } from 'fastify'
import type { RealtimeConnection } from './connection.js'
import { kMessagesIn, kMessagesOut } from './symbols.js'
import type { ConnectionLogLevel } from './types.js'

/** Whether a line at `level` would be written (pino says; a logger that cannot tell, such as Fastify's `logger: false` one, is asked to write). */
function enabled (log: FastifyBaseLogger, level: ConnectionLogLevel): boolean {
  if (level === 'silent') return false
  const isLevelEnabled = (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled
  return typeof isLevelEnabled !== 'function' || isLevelEnabled.call(log, level)
}

/** `fastify-realtime: connection open` with connId, route, sub and the remote address (`request.ip`: the proxy's client when the app trusts it). */
export function logOpened (conn: RealtimeConnection, level: ConnectionLogLevel): void {
  if (!enabled(conn.log, level)) return
  const request = conn.request
  conn.log[level]({
    connId: conn.id,
    route: conn.route.path,
    sub: conn.sub,
    // read only when the line is written: the socket keeps what its first read builds
    get remoteAddress () { return request.ip }
  }, 'fastify-realtime: connection open')
}

/** `fastify-realtime: connection closed` with the close code and reason, how long it lasted, and the messages in and out. */
export function logClosed (conn: RealtimeConnection, code: number, reason: string, durationMs: number, level: ConnectionLogLevel): void {
  if (!enabled(conn.log, level)) return
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
