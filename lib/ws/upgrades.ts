import type { Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { socketOf } from './internals.js'

const POLL_MS = 10

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
    socket.on('close', this.#onClose)
  }

  /** One listener for every socket (`this` is the socket): no closure per upgrade. */
  readonly #onClose = ((sockets: Set<Duplex>) => function forget (this: Duplex): void {
    sockets.delete(this)
  })(this.#sockets)

  constructor (server: Server) {
    this.#server = server
    server.on('upgrade', this.#onUpgrade)
  }

  /** A connection owns `ws` now: its close ends it, not endRefused. */
  adopted (ws: WebSocket): void {
    const socket = socketOf(ws)
    if (socket == null) return
    this.#sockets.delete(socket)
    socket.removeListener('close', this.#onClose)
  }

  /**
   * Let handshakes in progress finish (while `inProgress()` says so, up to
   * `graceMs`), then destroy every upgrade socket no connection owns.
   */
  async endRefused (graceMs: number, inProgress: () => boolean, owned: () => Iterable<WebSocket>): Promise<void> {
    const deadline = Date.now() + graceMs
    while (inProgress() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
    const keep = new Set<Duplex | null>()
    for (const ws of owned()) keep.add(socketOf(ws))
    for (const socket of this.#sockets) {
      if (!keep.has(socket)) socket.destroy()
    }
    this.#sockets.clear()
  }

  stop (): void {
    this.#server.removeListener('upgrade', this.#onUpgrade)
  }
}
