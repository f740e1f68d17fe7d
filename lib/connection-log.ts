// The two lines that tell a connection's story: one when it opens, one when it
// closes. Nothing per message. Never the URL: it may carry the `token` query
// parameter.
import type { FastifyBaseLogger } from 'fastify'
import type { RealtimeConnection } from './connection.js'
import { kMessagesIn, kMessagesOut } from './symbols.js'
import type { ConnectionLogLevel } from './types.js'

/** Functions already looked at by isEmptyFunction. */
const emptiness = new WeakMap<object, boolean>()
const EMPTY_FUNCTION = /^(?:function\s*[\w$]*\s*\(\s*\)\s*\{\s*\}|\(\s*\)\s*=>\s*\{\s*\})$/

/** Whether `fn`'s source is an empty function (Fastify's `logger: false` logger is made of them); looked at once per function. */
function isEmptyFunction (fn: unknown): boolean {
  if (typeof fn !== 'function') return false
  let empty = emptiness.get(fn)
  if (empty === undefined) {
    empty = EMPTY_FUNCTION.test(Function.prototype.toString.call(fn))
    emptiness.set(fn, empty)
  }
  return empty
}

/**
 * Whether a line at `level` would be written: pino says; a logger that cannot
 * tell is asked to write, unless its method for `level` is an empty function
 * (Fastify's `logger: false` logger), so no line is built for nothing.
 */
function enabled (log: FastifyBaseLogger, level: ConnectionLogLevel): boolean {
  if (level === 'silent') return false
  const isLevelEnabled = (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled
  if (typeof isLevelEnabled === 'function') return isLevelEnabled.call(log, level)
  return !isEmptyFunction(log[level])
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
