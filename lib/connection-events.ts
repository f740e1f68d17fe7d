// What observers learn when a connection opens and when it closes: its log
// line, its diagnostics channel message and its metrics, in one place.
import { logClosed, logOpened } from './connection-log.js'
import type { RealtimeConnection } from './connection.js'
import { publishClose, publishOpen } from './diagnostics.js'
import type { RealtimeMetrics } from './metrics.js'
import { kCloseSent, kOpenedAt } from './symbols.js'
import type { ConnectionLogLevel } from './types.js'

/** `conn` is open and tracked by its hub. */
export function connectionOpened (conn: RealtimeConnection, metrics: RealtimeMetrics | undefined, level: ConnectionLogLevel): void {
  conn[kOpenedAt] = Date.now()
  metrics?.connected(conn.route.path)
  logOpened(conn, level)
  publishOpen(conn)
}

/**
 * The socket of `conn` closed with `code` and `reason` as ws reports them (the
 * peer's close frame, 1005 without a code, 1006 for an abrupt end). When the
 * server began the close, its own code and reason are the ones reported: the
 * closing handshake carried them, whatever the peer echoed. A connection that
 * never opened (closed during shutdown before it was tracked) reports nothing.
 */
export function connectionEnded (conn: RealtimeConnection, code: number, reason: string, metrics: RealtimeMetrics | undefined, level: ConnectionLogLevel): void {
  const openedAt = conn[kOpenedAt]
  if (openedAt === 0) return
  conn[kOpenedAt] = 0
  const sent = conn[kCloseSent]
  if (sent !== undefined) {
    code = sent.code
    reason = sent.reason
  }
  metrics?.disconnected(code)
  logClosed(conn, code, reason, Date.now() - openedAt, level)
  publishClose(conn, code, reason)
}
