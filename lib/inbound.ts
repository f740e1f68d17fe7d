import type { WebSocket } from 'ws'
import { connectionOf, type ConnectionHost, type RealtimeConnection } from './connection.js'
import { dispatchMessage } from './dispatch.js'
import { parseEnvelope } from './envelope.js'
import { RATE_CLOSE, RATE_OK, checkRate } from './limits.js'
import { CloseCode, ErrorCode } from './protocol.js'
import { kAlive, kBacklog, kBusy, kHost } from './symbols.js'

/** Bytes of input waiting behind a pending handler past which the socket is paused (TCP pushes back). */
export const MAX_BACKLOG_BYTES = 1024 * 1024

/**
 * The 'message' listener every connection shares (`this` is the socket): binary
 * check, rate window, the queue behind a pending handler, then dispatch.
 * Messages of one connection are processed one at a time, in order.
 */
export function onSocketMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  const conn = connectionOf(this)
  if (conn.closing) {
    if (!isBinary) conn[kHost].metrics?.receivedText(conn.route, data)
    return
  }
  conn[kAlive] = true
  const host = conn[kHost]
  host.received(conn)
  if (isBinary) {
    conn.close(CloseCode.UNSUPPORTED_DATA, 'only JSON text frames are accepted')
    return
  }
  const { max, windowMs } = host.rateLimit
  const verdict = checkRate(conn, Date.now(), max, windowMs)
  if (verdict !== RATE_OK) {
    host.dropped('rate_limited')
    if (verdict === RATE_CLOSE) {
      host.metrics?.receivedText(conn.route, data)
      conn.close(CloseCode.RATE_LIMITED, 'rate limit exceeded')
    } else {
      refuse(conn, host, data)
    }
    return
  }
  if (conn[kBusy]) {
    wait(conn, host, data, max)
    return
  }
  process(conn, host, data)
}

/** A slow async handler holds the line: queue behind it, bounded in count and in bytes. */
function wait (conn: RealtimeConnection, host: ConnectionHost, data: Buffer, max: number): void {
  const backlog = conn[kBacklog] ??= { frames: [], bytes: 0, paused: false }
  if (backlog.frames.length >= max) {
    host.dropped('backlog')
    refuse(conn, host, data)
    return
  }
  backlog.frames.push(data)
  backlog.bytes += data.length
  // stop reading: what the peer sends next waits in its own and the kernel's buffers, not in our heap
  if (backlog.bytes > MAX_BACKLOG_BYTES && !backlog.paused) {
    backlog.paused = true
    conn.ws.pause()
  }
}

/** Answer RATE_LIMITED with the message's id, so a client's request() fails at once. */
function refuse (conn: RealtimeConnection, host: ConnectionHost, data: Buffer): void {
  const parsed = parseEnvelope(data.toString())
  host.metrics?.received(conn.route, parsed.ok ? parsed.envelope.type : undefined)
  host.sendError(conn, ErrorCode.RATE_LIMITED, parsed.ok ? parsed.envelope.id : parsed.id)
}

function process (conn: RealtimeConnection, host: ConnectionHost, data: Buffer): void {
  const pending = dispatchMessage(conn, host, data.toString())
  if (pending === undefined) return
  conn[kBusy] = true
  pending.then(() => { resume(conn, host) }, () => { resume(conn, host) })
}

function resume (conn: RealtimeConnection, host: ConnectionHost): void {
  conn[kBusy] = false
  const backlog = conn[kBacklog]
  if (backlog === undefined) return
  while (!conn[kBusy] && backlog.frames.length > 0 && !conn.closing) {
    const data = backlog.frames.shift() as Buffer
    backlog.bytes -= data.length
    process(conn, host, data)
  }
  if (backlog.paused && backlog.bytes <= MAX_BACKLOG_BYTES) {
    backlog.paused = false
    if (!conn.closing) conn.ws.resume()
  }
  if (backlog.frames.length === 0 && !backlog.paused) conn[kBacklog] = undefined
}
