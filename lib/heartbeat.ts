import { finished } from 'node:stream'
import type { WebSocket } from 'ws'
import { connectionOf, type RealtimeConnection } from './connection.js'
import { kAlive, kReadMark } from './symbols.js'
import { bytesRead, isTcp, socketOf } from './ws/internals.js'

function onPong (this: WebSocket): void {
  connectionOf(this)[kAlive] = true
}

/**
 * Liveness of a new connection. A TCP socket's `bytesRead` tells whether the
 * peer said anything (a pong is bytes too) without a listener per connection;
 * other streams (app.injectWS) get a 'pong' listener, and are destroyed once
 * both sides ended (they emit no 'close' then, and ws would wait 30 s).
 */
export function watchLiveness (conn: RealtimeConnection): void {
  const socket = socketOf(conn.ws)
  if (socket === null || isTcp(conn.ws)) return
  conn.ws.on('pong', onPong)
  finished(socket, () => { socket.destroy() })
}

/** The liveness check: did the peer send anything since the last call? */
export function heard (conn: RealtimeConnection): boolean {
  const read = bytesRead(conn.ws)
  const result = conn[kAlive] || read !== conn[kReadMark]
  conn[kAlive] = false
  conn[kReadMark] = read
  return result
}

/**
 * One server-wide ping sweep: each tick pings every connection that answered
 * since the last one (a pong, or anything else it sent) and terminates those
 * that did not.
 */
export class HeartbeatSweep {
  #timer: NodeJS.Timeout | undefined
  readonly #interval: number
  readonly #connections: () => Iterable<RealtimeConnection>

  constructor (interval: number, connections: () => Iterable<RealtimeConnection>) {
    this.#interval = interval
    this.#connections = connections
  }

  start (): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(this.sweep, this.#interval)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  readonly sweep = (): void => {
    for (const conn of this.#connections()) {
      if (!heard(conn)) {
        conn.log.debug({ connId: conn.id }, 'fastify-realtime: no pong since the last sweep; terminating')
        conn.terminate()
        continue
      }
      if (conn.ws.readyState === 1) conn.ws.ping()
    }
  }
}
