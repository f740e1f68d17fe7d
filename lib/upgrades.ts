import type { FastifyRequest } from 'fastify'
import { ServerResponse, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
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
    socket.on('close', this.#onClose)
  }

  /** One listener for every socket (`this` is the socket): no closure per upgrade. */
  readonly #onClose = ((sockets: Set<Duplex>) => function forget (this: Duplex): void {
    sockets.delete(this)
  })(this.#sockets)

  /** A connection owns `ws` now: its close ends it, not endRefused. */
  adopted (ws: WebSocket): void {
    const socket = (ws as unknown as WsSocket)._socket
    if (socket == null) return
    this.#sockets.delete(socket)
    socket.removeListener('close', this.#onClose)
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

interface UpgradedSocket extends Duplex { _httpMessage?: unknown }

/**
 * Let go of what the upgrade needed and an open connection does not, so an idle
 * connection costs little heap: the ServerResponse @fastify/websocket attached to
 * the socket (the Reply holds it too, through the socket's error listener, which
 * the caller replaces) and the upgrade's head buffer, which keeps the whole chunk
 * the request arrived in. `conn.request` itself stays whole.
 */
export function releaseUpgrade (ws: WebSocket, request: FastifyRequest): void {
  const socket = (ws as unknown as { _socket: UpgradedSocket | null })._socket
  const response = socket?._httpMessage
  if (response instanceof ServerResponse && response.socket === socket) response.detachSocket(socket as Socket)
  const raw = request.raw as unknown as Record<symbol, unknown>
  for (const key of Object.getOwnPropertySymbols(raw)) {
    // read once by wss.handleUpgrade, which has run
    if (key.description === 'ws-head') raw[key] = undefined
  }
}
