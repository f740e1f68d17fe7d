import type { Connection } from './connection.js'

/**
 * One server-wide ping sweep: each tick pings every connection that answered
 * since the last one (a pong, or anything else it sent) and terminates those
 * that did not.
 */
export class HeartbeatSweep {
  #timer: NodeJS.Timeout | undefined
  readonly #interval: number
  readonly #connections: () => Iterable<Connection>

  constructor (interval: number, connections: () => Iterable<Connection>) {
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
      if (!conn.heard()) {
        conn.log.debug({ connId: conn.id }, 'fastify-realtime: no pong since the last sweep; terminating')
        conn.terminate()
        continue
      }
      if (conn.ws.readyState === 1) conn.ws.ping()
    }
  }
}
