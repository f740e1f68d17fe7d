import type { Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RealtimeServer } from './server.js'

const POLL_MS = 10

interface WsSocket { _socket?: Duplex | null }

/**
 * Upgrade sockets not yet handed to a connection. Fastify answers upgrades with
 * 503 while closing before any hook runs, so @fastify/websocket never destroys
 * those sockets and `http.Server#close` would wait on them forever.
 */
export class UpgradeSockets {
  readonly #sockets = new Set<Duplex>()
  readonly #server: Server

  readonly #onUpgrade = (_request: unknown, socket: Duplex): void => {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
  }

  constructor (server: Server) {
    this.#server = server
    server.on('upgrade', this.#onUpgrade)
  }

  /** Let handshakes in progress finish (up to the grace period), then destroy every upgrade socket no connection owns. */
  async endRefused (realtime: RealtimeServer): Promise<void> {
    const deadline = Date.now() + realtime.options.closeGracePeriod
    while (realtime.limits.active > realtime.connections().length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
    const owned = new Set(realtime.connections().map((conn) => (conn.ws as unknown as WsSocket)._socket))
    for (const socket of this.#sockets) {
      if (!owned.has(socket)) socket.destroy()
    }
    this.#sockets.clear()
  }

  stop (): void {
    this.#server.removeListener('upgrade', this.#onUpgrade)
  }
}
